//! Delivering notifications like the platforms do: over HTTP to the configured URL, each copy
//! retried until acknowledged on the real schedule divided by `retry_divisor`.

use super::{Delivery, Faults, Sandbox};
use std::sync::Arc;
use std::time::Duration;

/// WeChat Pay v2: 15s 15s 30s 3m 10m 20m 30m 30m 30m 60m 3h 3h 3h 6h 6h (after the first).
const WECHAT_RETRY_SECONDS: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];
/// Ping++: 2m 10m 10m 1h 2h 6h 15h (after the first; 8 sends in 25 hours).
const PINGPP_RETRY_SECONDS: [u64; 7] = [120, 600, 600, 3600, 7200, 21600, 54000];

/// Alipay: 4m 10m 10m 1h 2h 6h 15h (after the first; 8 sends in about 25 hours).
const ALIPAY_RETRY_SECONDS: [u64; 7] = [240, 600, 600, 3600, 7200, 21600, 54000];

/// One notification to deliver.
#[derive(Debug, Clone)]
pub struct Message {
    /// `wechat`, `wechat_v3`, `pingpp` or `alipay`: how it is acknowledged and retried.
    pub provider: &'static str,
    pub out_trade_no: String,
    pub url: String,
    pub content_type: &'static str,
    /// Extra headers (Ping++'s signature).
    pub headers: Vec<(&'static str, String)>,
    /// APIv3: how each send is signed (afresh per send, as the platform does).
    pub v3_signing: Option<super::wxpay_v3::Signing>,
    pub body: String,
}

impl Message {
    fn acknowledged(&self, status: Option<u16>, reply: &str) -> bool {
        match self.provider {
            // WeChat wants 200 and return_code SUCCESS in the reply.
            "wechat" => {
                let fields =
                    crate::payment::wechat::xml::parse(reply.as_bytes()).unwrap_or_default();
                status == Some(200)
                    && fields.get("return_code").map(String::as_str) == Some("SUCCESS")
            }
            // Alipay: the body exactly `success` (7 bytes), nothing around it.
            "alipay" => status == Some(200) && reply == "success",
            // APIv3: 200 or 204, whatever the body.
            "wechat_v3" => matches!(status, Some(200 | 204)),
            // Ping++ takes any 2xx.
            _ => status.is_some_and(|s| (200..300).contains(&s)),
        }
    }

    fn schedule(&self) -> &'static [u64] {
        match self.provider {
            "wechat" | "wechat_v3" => &WECHAT_RETRY_SECONDS,
            "alipay" => &ALIPAY_RETRY_SECONDS,
            _ => &PINGPP_RETRY_SECONDS,
        }
    }
}

/// Sends `make()` (made per copy: every copy of a Ping++ event is the same event) as the
/// faults say: `copies` at once, after `delay_ms`, or never.
pub fn send(sb: Arc<Sandbox>, faults: &Faults, msg: Message) {
    if faults.never_deliver {
        return;
    }
    for copy in 0..faults.copies.max(1) {
        let (sb, msg, delay_ms) = (sb.clone(), msg.clone(), faults.delay_ms);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let divisor = u64::from(sb.retry_divisor);
            let waits = std::iter::once(0).chain(msg.schedule().iter().copied());
            for (try_no, wait) in waits.enumerate() {
                tokio::time::sleep(Duration::from_millis(wait * 1000 / divisor)).await;
                let mut req = sb
                    .http
                    .post(&msg.url)
                    .header("content-type", msg.content_type)
                    .body(msg.body.clone());
                for (k, v) in &msg.headers {
                    req = req.header(*k, v.clone());
                }
                if let Some(signing) = &msg.v3_signing {
                    for (k, v) in sb.v3_headers(&msg.body, &signing.for_try(try_no)) {
                        req = req.header(k, v);
                    }
                }
                let (status, reply) = match req.send().await {
                    Ok(r) => (
                        Some(r.status().as_u16()),
                        r.text().await.unwrap_or_default(),
                    ),
                    Err(e) => (None, e.to_string()),
                };
                let ok = msg.acknowledged(status, &reply);
                sb.state().deliveries.push(Delivery {
                    provider: msg.provider,
                    out_trade_no: msg.out_trade_no.clone(),
                    copy,
                    try_no: try_no as u32,
                    status,
                    reply,
                    acknowledged: ok,
                });
                if ok {
                    break;
                }
            }
        });
    }
}
