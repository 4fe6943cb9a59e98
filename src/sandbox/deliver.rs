//! Delivering notifications like the platforms do: over HTTP to the configured URL, each copy
//! retried until acknowledged on the real schedule divided by `retry_divisor`.

use super::{Delivery, Faults, Sandbox, WxOrder};
use crate::payment::pingpp::Charge;
use std::sync::Arc;
use std::time::Duration;

/// WeChat Pay v2: 15s 15s 30s 3m 10m 20m 30m 30m 30m 60m 3h 3h 3h 6h 6h (after the first).
const WECHAT_RETRY_SECONDS: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];
/// Ping++: 2m 10m 10m 1h 2h 6h 15h (after the first; 8 sends in 25 hours).
const PINGPP_RETRY_SECONDS: [u64; 7] = [120, 600, 600, 3600, 7200, 21600, 54000];

fn delay(sb: &Sandbox, seconds: u64) -> Duration {
    Duration::from_millis(seconds * 1000 / u64::from(sb.retry_divisor))
}

fn record(sb: &Sandbox, d: Delivery) {
    sb.state().deliveries.push(d);
}

/// Sends a paid WeChat order's notification to its notify_url.
pub fn wechat(sb: Arc<Sandbox>, order: WxOrder, faults: Faults) {
    if faults.never_deliver {
        return;
    }
    for copy in 0..faults.copies.max(1) {
        let (sb, order, faults) = (sb.clone(), order.clone(), faults.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
            let body = sb.wx_notification(&order, faults.wrong_amount, faults.bad_signature);
            let schedule = std::iter::once(0).chain(WECHAT_RETRY_SECONDS);
            for (try_no, wait) in schedule.enumerate() {
                tokio::time::sleep(delay(&sb, wait)).await;
                let res = sb
                    .http
                    .post(&order.notify_url)
                    .header("content-type", "text/xml")
                    .body(body.clone())
                    .send()
                    .await;
                let (status, reply) = match res {
                    Ok(r) => (
                        Some(r.status().as_u16()),
                        r.text().await.unwrap_or_default(),
                    ),
                    Err(e) => (None, e.to_string()),
                };
                let fields =
                    crate::payment::wechat::xml::parse(reply.as_bytes()).unwrap_or_default();
                let ok = status == Some(200)
                    && fields.get("return_code").map(String::as_str) == Some("SUCCESS");
                record(
                    &sb,
                    Delivery {
                        provider: "wechat",
                        out_trade_no: order.out_trade_no.clone(),
                        copy,
                        try_no: try_no as u32,
                        status,
                        reply,
                        acknowledged: ok,
                    },
                );
                if ok {
                    break;
                }
            }
        });
    }
}

/// Posts a paid charge's `charge.succeeded` Event to the webhook URL.
pub fn pingpp(sb: Arc<Sandbox>, charge: Charge, faults: Faults) {
    if faults.never_deliver {
        return;
    }
    for copy in 0..faults.copies.max(1) {
        let (sb, charge, faults) = (sb.clone(), charge.clone(), faults.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
            let (body, signature) = sb.pp_event(&charge, faults.wrong_amount, faults.bad_signature);
            let schedule = std::iter::once(0).chain(PINGPP_RETRY_SECONDS);
            for (try_no, wait) in schedule.enumerate() {
                tokio::time::sleep(delay(&sb, wait)).await;
                let res = sb
                    .http
                    .post(&sb.pingpp_webhook_url)
                    .header("content-type", "application/json")
                    .header("X-Pingplusplus-Signature", signature.clone())
                    .body(body.clone())
                    .send()
                    .await;
                let (status, reply) = match res {
                    Ok(r) => (
                        Some(r.status().as_u16()),
                        r.text().await.unwrap_or_default(),
                    ),
                    Err(e) => (None, e.to_string()),
                };
                let ok = status.is_some_and(|s| (200..300).contains(&s));
                record(
                    &sb,
                    Delivery {
                        provider: "pingpp",
                        out_trade_no: charge.order_no.clone(),
                        copy,
                        try_no: try_no as u32,
                        status,
                        reply,
                        acknowledged: ok,
                    },
                );
                if ok {
                    break;
                }
            }
        });
    }
}
