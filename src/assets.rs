//! The files the binary carries: templates, static files and the sandbox's test keys,
//! embedded at build time (`build.rs`), and the optional override directory (`assets_dir`)
//! whose `templates/` and `static/` files win over the embedded ones. Read once at startup.
//! May import std, tera and sha2; never actix.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The sandbox's test keys, by the paths the configuration's defaults name: those paths mean
/// the embedded copies, wherever the binary runs (live mode refuses them).
const SANDBOX_KEYS: &[(&str, &str)] = &[
    (
        "keys/sandbox/pingpp_platform_public.pem",
        include_str!("../keys/sandbox/pingpp_platform_public.pem"),
    ),
    (
        "keys/sandbox/pingpp_platform_private.pem",
        include_str!("../keys/sandbox/pingpp_platform_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_merchant_private.pem",
        include_str!("../keys/sandbox/wechat_v3_merchant_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_merchant_public.pem",
        include_str!("../keys/sandbox/wechat_v3_merchant_public.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_pubkey_private.pem",
        include_str!("../keys/sandbox/wechat_v3_pubkey_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_pubkey_public.pem",
        include_str!("../keys/sandbox/wechat_v3_pubkey_public.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_1_cert.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_1_cert.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_1_private.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_1_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_2_cert.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_2_cert.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_2_private.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_2_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_3_cert.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_3_cert.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_3_private.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_3_private.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_4_cert.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_4_cert.pem"),
    ),
    (
        "keys/sandbox/wechat_v3_platform_4_private.pem",
        include_str!("../keys/sandbox/wechat_v3_platform_4_private.pem"),
    ),
    (
        "keys/sandbox/alipay_app_private.pem",
        include_str!("../keys/sandbox/alipay_app_private.pem"),
    ),
    (
        "keys/sandbox/alipay_app_public.pem",
        include_str!("../keys/sandbox/alipay_app_public.pem"),
    ),
    (
        "keys/sandbox/alipay_platform_private.pem",
        include_str!("../keys/sandbox/alipay_platform_private.pem"),
    ),
    (
        "keys/sandbox/alipay_platform_public.pem",
        include_str!("../keys/sandbox/alipay_platform_public.pem"),
    ),
    (
        "keys/sandbox/alipay_app_cert.pem",
        include_str!("../keys/sandbox/alipay_app_cert.pem"),
    ),
    (
        "keys/sandbox/alipay_platform_cert.pem",
        include_str!("../keys/sandbox/alipay_platform_cert.pem"),
    ),
    (
        "keys/sandbox/alipay_root_cert.pem",
        include_str!("../keys/sandbox/alipay_root_cert.pem"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is not UTF-8")]
    NotUtf8(String),
    #[error("templates: {0}")]
    Templates(#[from] tera::Error),
}

/// The embedded sandbox key a configured path names, if it is one of them.
pub fn sandbox_key(path: &str) -> Option<&'static str> {
    SANDBOX_KEYS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, pem)| *pem)
}

/// Reads a PEM file, or the embedded sandbox key its path names.
pub fn read_key(path: &str) -> Result<String, AssetError> {
    match sandbox_key(path) {
        Some(pem) => Ok(pem.to_string()),
        None => std::fs::read_to_string(path).map_err(|e| AssetError::Io(path.into(), e)),
    }
}

/// Every file under `dir` (none when it does not exist), by its `/`-separated relative path.
fn override_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, AssetError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), AssetError> {
        let io = |e| AssetError::Io(dir.display().to_string(), e);
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path: PathBuf = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes =
                std::fs::read(&path).map_err(|e| AssetError::Io(path.display().to_string(), e))?;
            out.push((name, bytes));
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out)?;
    }
    Ok(out)
}

/// The embedded files of one kind with the override directory's on top.
fn merged(
    embedded: &'static [(&'static str, &'static [u8])],
    over: Option<&Path>,
) -> Result<BTreeMap<String, Vec<u8>>, AssetError> {
    let mut files: BTreeMap<String, Vec<u8>> = embedded
        .iter()
        .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
        .collect();
    if let Some(dir) = over {
        files.extend(override_files(dir)?);
    }
    Ok(files)
}

/// Loads the templates (embedded, then `<assets_dir>/templates/`); a broken template stops
/// the boot. Autoescape is on for `.html`.
pub fn templates(assets_dir: Option<&Path>) -> Result<tera::Tera, AssetError> {
    let files = merged(
        TEMPLATES,
        assets_dir.map(|d| d.join("templates")).as_deref(),
    )?;
    let mut sources = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let text = String::from_utf8(bytes).map_err(|_| AssetError::NotUtf8(name.clone()))?;
        sources.push((name, text));
    }
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_templates(sources)?;
    Ok(tera)
}

/// One static file as served: its bytes, type and entity tag.
pub struct StaticFile {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub etag: String,
}

/// The static files (embedded, then `<assets_dir>/static/`), served from memory.
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

impl StaticFiles {
    pub fn load(assets_dir: Option<&Path>) -> Result<StaticFiles, AssetError> {
        let files = merged(STATIC, assets_dir.map(|d| d.join("static")).as_deref())?
            .into_iter()
            .map(|(name, body)| {
                let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..12]));
                let file = StaticFile {
                    content_type: content_type(&name),
                    etag,
                    body,
                };
                (name, file)
            })
            .collect();
        Ok(StaticFiles { files })
    }

    /// The file at `path` (relative to `/static/`).
    pub fn get(&self, path: &str) -> Option<&StaticFile> {
        self.files.get(path)
    }
}
