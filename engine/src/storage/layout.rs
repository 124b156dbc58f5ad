//! Which files a model's table folder can hold: its Delta log, and data files named as the
//! Delta writer names them, in exactly the partition folders its partition columns make. Cleanup
//! never looks at anything else (a nested table, a file someone put there).

use object_store::path::Path;

/// Whether `path` (relative to the table folder) is a file the table's own layout can hold.
pub(super) fn holds(path: &Path, partition_by: &[String]) -> bool {
    let parts: Vec<String> = path.parts().map(|part| part.as_ref().to_string()).collect();
    if parts.first().is_some_and(|first| first == "_delta_log") {
        return parts.len() == 2;
    }
    is_data_file(path, partition_by)
}

/// Whether `path` is a data file in one of the table's partition folders (or at its root, for a
/// table without partition columns), named as the Delta writer names its files.
pub(super) fn is_data_file(path: &Path, partition_by: &[String]) -> bool {
    let parts: Vec<String> = path.parts().map(|part| part.as_ref().to_string()).collect();
    let Some((name, folders)) = parts.split_last() else {
        return false;
    };
    folders.len() == partition_by.len()
        && folders.iter().zip(partition_by).all(|(folder, column)| {
            folder
                .strip_prefix(column.as_str())
                .is_some_and(|rest| rest.starts_with('='))
        })
        && is_data_file_name(name)
}

/// `part-00000-<uuid>-c000.snappy.parquet` (the codec part optional), the name the Delta
/// writer gives a file, with `#<n>` after it while a local upload is in progress.
pub(super) fn is_data_file_name(name: &str) -> bool {
    let name = match name.split_once('#') {
        Some((name, upload))
            if !upload.is_empty() && upload.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        Some(_) => return false,
        None => name,
    };
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let Some((part, rest)) = rest.split_once('-') else {
        return false;
    };
    let Some((writer, rest)) = rest.split_at_checked(36) else {
        return false;
    };
    let Some(codec) = rest
        .strip_prefix("-c000")
        .and_then(|rest| rest.strip_suffix(".parquet"))
    else {
        return false;
    };
    !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && uuid::Uuid::parse_str(writer).is_ok()
        && (codec.is_empty()
            || codec
                .strip_prefix('.')
                .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_log_and_data_files_in_partition_folders_belong_to_a_table() {
        let date = ["date".to_string()];
        let yes = |p: &str, by: &[String]| holds(&Path::parse(p).unwrap(), by);
        let file = "part-00001-02f09a3f-1624-3b1d-8409-44eff7708208-c000.snappy.parquet";
        assert!(yes("_delta_log/00000000000000000000.json", &date));
        assert!(yes(&format!("date=2024-01-15/{file}"), &date));
        assert!(yes(&format!("date=2024-01-15/{file}#3"), &date));
        assert!(yes(&file.replace(".snappy", ""), &[]));
        assert!(!yes(file, &date));
        assert!(!yes("date=2024-01-15/notes.parquet", &date));
        assert!(!yes(&format!("date=2024-01-15/{file}.bak"), &date));
        assert!(!yes("date=2024-01-15/part-1.parquet", &date));
        assert!(!yes(&format!("other/{file}"), &date));
        assert!(!yes("nested/_delta_log/00000000000000000000.json", &date));
        assert!(!yes(&format!("date=2024-01-15/nested/{file}"), &date));
        assert!(!yes(&format!("warehouse/model/{file}"), &[]));
    }
}
