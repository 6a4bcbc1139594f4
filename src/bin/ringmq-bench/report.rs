//! The result: one JSON object on stdout, and in `--json FILE`.

use std::path::Path;

pub fn emit(v: &serde_json::Value, file: Option<&Path>) {
    let line = v.to_string();
    println!("{line}");
    if let Some(path) = file {
        if let Err(e) = std::fs::write(path, format!("{line}\n")) {
            eprintln!("ringmq-bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
