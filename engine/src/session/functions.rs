//! SESSION: the functions dbt-duckdb projects call that DataFusion lacks or names otherwise,
//! registered on each session: `strftime()` (either argument order), `read_csv()`,
//! `read_csv_auto()`, `read_parquet()` and `read_json()` as table functions over files in the
//! project folder, and, in the DuckDB dialect, `avg()` of decimals as a double and
//! `generate_series()` / `range()` whose column is named after the function.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::DFSchema;
use datafusion::common::{ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::ViewTable;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, BinaryExpr, Coercion, ColumnarValue,
    Documentation, Expr, GroupsAccumulator, LogicalPlanBuilder, Operator, ReversedUDAF,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, TypeSignatureClass,
    Volatility, col,
};
use datafusion::prelude::SessionContext;
use sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, FunctionArg as SqlArg, FunctionArgExpr, TableFactor,
};

use crate::project::profile::Dialect;

/// Register the functions of `dialect` on `session`, whose `read_*()` paths are relative to
/// `root` (the project folder).
pub fn register(session: &SessionContext, dialect: Dialect, root: &Path) {
    session.register_udf(ScalarUDF::from(Strftime::new()));
    session.register_udf(ScalarUDF::from(Coalesce::default()));
    session.register_udf(ScalarUDF::from(Modulo::new()));
    for (name, kind) in READ_FUNCTIONS {
        let function = ReadFiles {
            name,
            kind,
            root: root.to_path_buf(),
        };
        session.register_udtf(name, Arc::new(function));
    }
    // DuckDB's `read_csv(path, delim=';')`: options DataFusion would read as columns.
    let _ = session.register_relation_planner(Arc::new(ReadOptions {
        root: root.to_path_buf(),
    }));
    if dialect == Dialect::Duckdb {
        session.register_udaf(AggregateUDF::from(DoubleAvg::new()));
        session.register_udtf(
            "generate_series",
            Arc::new(NamedSeries {
                name: "generate_series",
                inner: Arc::new(
                    datafusion::functions_table::generate_series::GenerateSeriesFunc {},
                ),
            }),
        );
        session.register_udtf(
            "range",
            Arc::new(NamedSeries {
                name: "range",
                inner: Arc::new(datafusion::functions_table::generate_series::RangeFunc {}),
            }),
        );
    }
}

/// The table functions that read files, and the kind of file each reads.
const READ_FUNCTIONS: [(&str, FileKind); 6] = [
    ("read_csv", FileKind::Csv),
    ("read_csv_auto", FileKind::Csv),
    ("read_parquet", FileKind::Parquet),
    ("read_json", FileKind::Json),
    ("read_json_auto", FileKind::Json),
    ("read_ndjson", FileKind::Json),
];

/// DuckDB's `avg()`: the mean of integers, floats and decimals as a double (DataFusion's own
/// keeps a decimal's type with 4 more digits of scale, so 33.306666 where DuckDB gives
/// 33.306666666666665); of durations, a duration. It is DataFusion's `avg` over its argument
/// cast to a double.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DoubleAvg {
    inner: Avg,
    signature: Signature,
}

impl DoubleAvg {
    pub fn new() -> Self {
        let double = datafusion::common::types::logical_float64();
        Self {
            inner: Avg::new(),
            signature: Signature::one_of(
                vec![
                    TypeSignature::Coercible(vec![Coercion::new_exact(
                        TypeSignatureClass::Duration,
                    )]),
                    TypeSignature::Coercible(vec![Coercion::new_implicit(
                        TypeSignatureClass::Native(double),
                        vec![
                            TypeSignatureClass::Integer,
                            TypeSignatureClass::Float,
                            TypeSignatureClass::Decimal,
                        ],
                        datafusion::common::types::NativeType::Float64,
                    )]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for DoubleAvg {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for DoubleAvg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// DuckDB's `strftime(value, format)`, which also takes `strftime(format, value)`: DataFusion's
/// `to_char` with the format found among the two (chrono's `%` codes, as DuckDB's).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Strftime {
    signature: Signature,
}

impl Strftime {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for Strftime {
    fn default() -> Self {
        Self::new()
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

/// Which argument of `strftime` is the format: the text one beside a value that is not text.
fn format_first(types: &[DataType]) -> bool {
    matches!(types, [first, second] if is_text(first) && !is_text(second) && *second != DataType::Null)
}

impl ScalarUDFImpl for Strftime {
    fn name(&self) -> &str {
        "strftime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [first, second] = arg_types else {
            return plan_err!("strftime takes a date or timestamp and a format");
        };
        let (value, format) = match format_first(arg_types) {
            true => (second, first),
            false => (first, second),
        };
        // A value given as text is read as a timestamp, as DuckDB casts it.
        let value = match value {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => {
                DataType::Timestamp(TimeUnit::Nanosecond, None)
            }
            other => other.clone(),
        };
        let format = match format {
            DataType::Null => DataType::Utf8,
            other => other.clone(),
        };
        Ok(match format_first(arg_types) {
            true => vec![format, value],
            false => vec![value, format],
        })
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if format_first(&types) {
            args.args.swap(0, 1);
            args.arg_fields.swap(0, 1);
        }
        datafusion::functions::datetime::to_char().invoke_with_args(args)
    }
}

/// `coalesce()`, whose text arguments beside values of one other type are read as that type
/// (`coalesce(max(day), '1900-01-01')` is a date, as in DuckDB and Postgres), where
/// DataFusion's own finds no common type and fails: DataFusion's otherwise.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Coalesce {
    inner: datafusion::functions::core::coalesce::CoalesceFunc,
}

impl ScalarUDFImpl for Coalesce {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types).or_else(|error| {
            let mut typed = arg_types
                .iter()
                .filter(|t| !is_text(t) && **t != DataType::Null);
            match (typed.next(), typed.next()) {
                (Some(only), None) => Ok(vec![only.clone(); arg_types.len()]),
                _ => Err(error),
            }
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Postgres' (and dbt's macros') `mod(a, b)`: DataFusion's `a % b`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Modulo {
    signature: Signature,
}

impl Modulo {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Modulo {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b] => datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer::new(
                a,
                &Operator::Modulo,
                b,
            )
            .get_result_type(),
            _ => plan_err!("mod() takes two numbers"),
        }
    }

    fn simplify(
        &self,
        mut args: Vec<Expr>,
        _info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        let (Some(b), Some(a)) = (args.pop(), args.pop()) else {
            return plan_err!("mod() takes two numbers");
        };
        Ok(
            datafusion::logical_expr::simplify::ExprSimplifyResult::Simplified(Expr::BinaryExpr(
                BinaryExpr::new(Box::new(a), Operator::Modulo, Box::new(b)),
            )),
        )
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        plan_err!("mod() is planned as `%`")
    }
}

/// DuckDB's `generate_series()` and `range()`: DataFusion's, with the column named after the
/// function (DataFusion names it `value`).
#[derive(Debug)]
struct NamedSeries {
    name: &'static str,
    inner: Arc<dyn TableFunctionImpl>,
}

impl TableFunctionImpl for NamedSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let series = self.inner.call_with_args(args)?;
        let plan = LogicalPlanBuilder::scan(self.name, provider_as_source(series), None)?
            .project(vec![col("value").alias(self.name)])?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The kind of file a `read_*()` table function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Csv,
    Parquet,
    Json,
}

/// `read_csv('data/orders.csv', delim=';')` and the like: the files at a path relative to the
/// project folder (a `*` in the file name reads every matching file), as a table whose columns
/// are inferred from the first file when the model is planned. Only files in the project folder
/// are read.
#[derive(Debug)]
struct ReadFiles {
    name: &'static str,
    kind: FileKind,
    root: PathBuf,
}

/// How a CSV file is read: the options of `read_csv()` dp understands.
struct CsvOptions {
    header: bool,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
}

impl ReadFiles {
    /// The files `path` names, checked to be in the project folder.
    fn files(&self, path: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
        let name = self.name;
        if path.contains("://") {
            return plan_err!(
                "{name}('{path}'): dp reads files in the project folder only; declare a source for data in an object store"
            );
        }
        let relative = Path::new(path);
        let escapes = relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)));
        if escapes {
            return plan_err!(
                "{name}('{path}'): dp reads files in the project folder only, by a path relative to it"
            );
        }
        let full = self.root.join(relative);
        let file_name = full
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let files = if file_name.contains(['*', '?']) {
            let folder = full.parent().unwrap_or(&self.root);
            let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
                .map(|entries| {
                    entries
                        .filter_map(|entry| entry.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.is_file()
                                && p.file_name().is_some_and(|n| {
                                    wildcard_match(&file_name, &n.to_string_lossy())
                                })
                        })
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            found
        } else if full.is_file() {
            vec![full.clone()]
        } else {
            Vec::new()
        };
        if files.is_empty() {
            return plan_err!(
                "{name}('{path}'): no file at {} (paths are relative to the project folder)",
                full.display()
            );
        }
        Ok((full, files))
    }

    fn csv_options(&self, options: &[(String, ScalarValue)]) -> Result<CsvOptions> {
        let mut csv = CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            escape: None,
        };
        let one_byte = |option: &str, value: &ScalarValue| -> Result<u8> {
            match value.try_as_str().flatten().map(str::as_bytes) {
                Some([byte]) => Ok(*byte),
                _ => plan_err!("{}: `{option}` takes one character", self.name),
            }
        };
        for (option, value) in options {
            match option.to_ascii_lowercase().as_str() {
                "header" => {
                    csv.header = match value {
                        ScalarValue::Boolean(Some(b)) => *b,
                        other => matches!(
                            other
                                .try_as_str()
                                .flatten()
                                .map(str::to_ascii_lowercase)
                                .as_deref(),
                            Some("true" | "1")
                        ),
                    }
                }
                "delim" | "sep" | "delimiter" => csv.delimiter = one_byte(option, value)?,
                "quote" => csv.quote = one_byte(option, value)?,
                "escape" => csv.escape = Some(one_byte(option, value)?),
                // Detecting types and the dialect is what dp does anyway.
                "auto_detect" | "sample_size" => {}
                _ => {
                    return plan_err!(
                        "{}: option `{option}` is not supported by dp (it reads header, delim, sep, quote and escape)",
                        self.name
                    );
                }
            }
        }
        Ok(csv)
    }
}

/// Whether `name` matches `pattern`, where `*` is any text and `?` any one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// Plans a `read_*()` call whose options are written `name=value` (DuckDB's way), which
/// DataFusion would plan as comparisons of columns that do not exist: each option becomes
/// `name = value` of a column named as the option, for [`ReadFiles`] to read.
#[derive(Debug)]
struct ReadOptions {
    root: PathBuf,
}

impl RelationPlanner for ReadOptions {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let function = name.to_string().to_ascii_lowercase();
        let Some((name, kind)) = READ_FUNCTIONS.into_iter().find(|(n, _)| *n == function) else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        if args.args.len() < 2 {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let empty = DFSchema::empty();
        let mut exprs = Vec::new();
        for arg in &args.args {
            let (option, value) = match arg {
                SqlArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                })) => match left.as_ref() {
                    SqlExpr::Identifier(option) => (Some(option.value.clone()), right.as_ref()),
                    _ => (None, right.as_ref()),
                },
                SqlArg::Named {
                    name,
                    arg: FunctionArgExpr::Expr(value),
                    ..
                } => (Some(name.value.clone()), value),
                SqlArg::Unnamed(FunctionArgExpr::Expr(value)) => (None, value),
                other => return plan_err!("{function}(): unsupported argument {other}"),
            };
            let value = context.sql_to_expr(value.clone(), &empty)?;
            exprs.push(match option {
                Some(option) => Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(Expr::Column(datafusion::common::Column::from_name(option))),
                    Operator::Eq,
                    Box::new(value),
                )),
                None => value,
            });
        }
        // Read here: DataFusion's table functions get their arguments simplified, which a
        // column standing for an option does not survive.
        let read = ReadFiles {
            name,
            kind,
            root: self.root.clone(),
        };
        let plan = LogicalPlanBuilder::scan(
            datafusion::common::TableReference::bare(format!("{function}()")),
            provider_as_source(read.provider(&exprs)?),
            None,
        )?
        .build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// The path and the `name=value` options of a `read_*()` call.
fn call_arguments(name: &str, exprs: &[Expr]) -> Result<(String, Vec<(String, ScalarValue)>)> {
    let Some(Expr::Literal(first, _)) = exprs.first() else {
        return plan_err!("{name}() takes a path in quotes first, such as {name}('data/x.csv')");
    };
    let Some(Some(path)) = first.try_as_str() else {
        return plan_err!("{name}() takes a path in quotes first, such as {name}('data/x.csv')");
    };
    let mut options = Vec::new();
    for expr in &exprs[1..] {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(option), Expr::Literal(value, _)) => {
                    options.push((option.name.clone(), value.clone()))
                }
                _ => return plan_err!("{name}(): options are written name=value"),
            },
            _ => return plan_err!("{name}(): options are written name=value"),
        }
    }
    Ok((path.to_string(), options))
}

impl TableFunctionImpl for ReadFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        self.provider(args.exprs())
    }
}

impl ReadFiles {
    /// The table the call with `exprs` reads.
    fn provider(&self, exprs: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let (path, options) = call_arguments(self.name, exprs)?;
        let (full, files) = self.files(&path)?;
        let first = &files[0];
        let open = || {
            std::fs::File::open(first)
                .map_err(|e| plan_datafusion_err!("{}: {}: {e}", self.name, first.display()))
        };
        let (format, schema): (Arc<dyn FileFormat>, Schema) = match self.kind {
            FileKind::Csv => {
                let csv = self.csv_options(&options)?;
                let mut infer = datafusion::arrow::csv::reader::Format::default()
                    .with_header(csv.header)
                    .with_delimiter(csv.delimiter)
                    .with_quote(csv.quote);
                let mut format = CsvFormat::default()
                    .with_has_header(csv.header)
                    .with_delimiter(csv.delimiter)
                    .with_quote(csv.quote);
                if let Some(escape) = csv.escape {
                    infer = infer.with_escape(escape);
                    format = format.with_escape(Some(escape));
                }
                let (schema, _) = infer.infer_schema(open()?, Some(100_000))?;
                (Arc::new(format), schema)
            }
            FileKind::Parquet => {
                if !options.is_empty() {
                    return plan_err!("{}: dp reads no options", self.name);
                }
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)?;
                let schema = reader.schema().as_ref().clone();
                (Arc::new(ParquetFormat::default()), schema)
            }
            FileKind::Json => {
                if !options.is_empty() {
                    return plan_err!("{}: dp reads no options", self.name);
                }
                let reader = std::io::BufReader::new(open()?);
                let (schema, _) = datafusion::arrow::json::reader::infer_json_schema_from_seekable(
                    reader,
                    Some(100_000),
                )
                .map_err(|e| {
                    plan_datafusion_err!(
                        "{}: {} is not newline-delimited JSON: {e}",
                        self.name,
                        first.display()
                    )
                })?;
                (Arc::new(JsonFormat::default()), schema)
            }
        };
        let url = ListingTableUrl::parse(full.to_string_lossy())?;
        let listing = ListingOptions::new(format).with_file_extension("");
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing)
            .with_schema(SchemaRef::new(schema));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(wildcard_match("*.csv", "orders.csv"));
        assert!(wildcard_match("part-?.csv", "part-1.csv"));
        assert!(!wildcard_match("*.csv", "orders.parquet"));
    }

    #[test]
    fn a_read_function_reads_only_in_the_project_folder() {
        let read = ReadFiles {
            name: "read_csv",
            kind: FileKind::Csv,
            root: PathBuf::from("/nonexistent"),
        };
        for path in ["../x.csv", "/etc/hostname", "s3://bucket/x.csv"] {
            let error = read.files(path).unwrap_err().to_string();
            assert!(error.contains("project folder"), "{error}");
        }
    }

    #[test]
    fn strftime_takes_its_arguments_in_either_order() {
        let date = DataType::Date32;
        assert!(format_first(&[DataType::Utf8, date.clone()]));
        assert!(!format_first(&[date, DataType::Utf8]));
        assert_eq!(ScalarValue::from("x").data_type(), DataType::Utf8);
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[tokio::test]
    async fn read_csv_takes_duckdbs_options() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "id;name\n1;a\n").unwrap();
        let session = SessionContext::new();
        register(&session, Dialect::Datafusion, dir.path());
        let frame = session
            .sql("select id, name from read_csv('c.csv', delim=';', header=true)")
            .await
            .unwrap();
        let batches = frame.collect().await.unwrap();
        assert_eq!(batches[0].num_rows(), 1);
    }
}
