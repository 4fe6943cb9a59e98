//! Embeds `templates/` and `static/` into the binary: writes `assets.rs` into `OUT_DIR`, a
//! list of `(relative path, include_bytes!(absolute path))` per directory. Plain std, so the
//! build needs no extra crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn table(root: &Path, name: &str, code: &mut String) -> std::io::Result<()> {
    let dir = root.join(name);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found = Vec::new();
    files(&dir, &mut found)?;
    found.sort();
    let _ = writeln!(
        code,
        "/// Every file under `{name}/`, by its path relative to it."
    );
    let _ = writeln!(
        code,
        "pub static {}: &[(&str, &[u8])] = &[",
        name.to_uppercase()
    );
    for path in found {
        let Ok(relative) = path.strip_prefix(&dir) else {
            continue;
        };
        let relative = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let _ = writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(std::io::Error::other)?);
    let mut code = String::new();
    table(&root, "templates", &mut code)?;
    table(&root, "static", &mut code)?;
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    std::fs::write(out.join("assets.rs"), code)
}
