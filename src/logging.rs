//! The process's logger: env_logger (`RUST_LOG` filters, `info` by default) writing plain
//! lines or, with `log_format = "json"`, one JSON object per line. The request id of the
//! request being served, when the line is logged inside it, rides in a task-local set by
//! `controllers::ops::request_id`. Imports only config.

use crate::config::LogFormat;
use std::io::Write;

tokio::task_local! {
    /// The id of the request whose future is being polled (see `ops::request_id`).
    pub static REQUEST_ID: String;
}

/// The current request's id, when the caller runs inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// One log line as a JSON object: `ts` (RFC 3339, UTC, milliseconds), `level`, `target`,
/// `message`, and `request_id` when known. No trailing newline.
pub fn json_line(ts: &str, record: &log::Record, request_id: Option<&str>) -> String {
    let mut line = serde_json::json!({
        "ts": ts,
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
    });
    if let (Some(id), Some(map)) = (request_id, line.as_object_mut()) {
        map.insert("request_id".into(), id.into());
    }
    line.to_string()
}

/// Installs the logger (once per process; a second call changes nothing).
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let id = current_request_id();
            writeln!(buf, "{}", json_line(&ts, record, id.as_deref()))
        });
    }
    let _ = builder.try_init();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(request_id: Option<&str>) -> serde_json::Value {
        let text = json_line(
            "2026-12-01T16:00:00.000Z",
            &log::Record::builder()
                .args(format_args!("notification \"quoted\"\nnext line"))
                .level(log::Level::Warn)
                .target("jiesuan::controllers::notify")
                .build(),
            request_id,
        );
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field() {
        let v = line(Some("req-42"));
        assert_eq!(v["ts"], "2026-12-01T16:00:00.000Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "jiesuan::controllers::notify");
        assert_eq!(v["message"], "notification \"quoted\"\nnext line");
        assert_eq!(v["request_id"], "req-42");
    }

    #[test]
    fn a_json_line_outside_a_request_has_no_request_id() {
        let v = line(None);
        assert!(v.get("request_id").is_none(), "{v}");
        assert_eq!(v["level"], "WARN");
    }
}
