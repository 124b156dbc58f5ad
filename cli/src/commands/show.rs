//! `dp show`: the first rows of a model's query or of an inline query, from the published
//! tables.

use std::process::ExitCode;

use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use dp_engine::ShowQuery;

use crate::args::{GlobalArgs, OutputFormat, SelectArgs, ShowArgs};

pub fn run(global: &GlobalArgs, args: &ShowArgs) -> miette::Result<ExitCode> {
    let select = SelectArgs {
        vars: args.vars.clone(),
        ..SelectArgs::default()
    };
    let prepared = super::prepare_partial(global, &select)?;
    let query = match (&args.select, &args.inline) {
        (Some(model), _) => ShowQuery::Model(model.clone()),
        (None, Some(sql)) => ShowQuery::Inline(sql.clone()),
        (None, None) => unreachable!("clap requires --select or --inline"),
    };
    let runtime = super::runtime()?;
    let batches = runtime.block_on(prepared.show(&query, args.limit))?;
    let text = match args.format {
        OutputFormat::Human => pretty_format_batches(&batches)
            .map(|table| format!("{table}\n"))
            .map_err(|e| miette::miette!("cannot format the rows: {e}"))?,
        OutputFormat::Json => {
            let mut writer = ArrayWriter::new(Vec::new());
            let batches: Vec<_> = batches.iter().collect();
            writer
                .write_batches(&batches)
                .and_then(|()| writer.finish())
                .map_err(|e| miette::miette!("cannot write the rows as JSON: {e}"))?;
            let json = writer.into_inner();
            match json.is_empty() {
                true => "[]\n".to_string(),
                false => format!("{}\n", String::from_utf8_lossy(&json)),
            }
        }
    };
    super::out(&text);
    Ok(ExitCode::SUCCESS)
}
