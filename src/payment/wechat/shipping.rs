//! The mini-program's server API for WeChat's 发货信息管理: `POST cgi-bin/stable_token` (the
//! access_token; the AppSecret travels in the body, never in a URL) and
//! `POST wxa/sec/order/upload_shipping_info?access_token=…`. Errors hold no URL (the token
//! is in the query) and no secret.

use crate::payment::transport_error;
use serde::{Deserialize, Serialize};

/// The mini-program's server API.
#[derive(Clone)]
pub struct MiniProgramApi {
    pub http: reqwest::Client,
    /// `https://api.weixin.qq.com`, or the sandbox.
    pub base: String,
    pub appid: String,
    pub secret: String,
}

impl std::fmt::Debug for MiniProgramApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniProgramApi")
            .field("base", &self.base)
            .field("appid", &self.appid)
            .field("secret", &crate::config::Redacted(&self.secret))
            .finish()
    }
}

/// Why a call failed; the text is safe to log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No usable answer: unreachable, timed out, an HTTP error, or not JSON.
    #[error("{0}")]
    Transport(String),
    /// WeChat's `{errcode, errmsg}`.
    #[error("errcode {errcode}: {errmsg}")]
    Refused { errcode: i64, errmsg: String },
}

impl ApiError {
    /// The token is dead (40001 invalid credential, 42001 expired): refresh once and retry.
    pub fn token_invalid(&self) -> bool {
        matches!(self, ApiError::Refused { errcode, .. } if *errcode == 40001 || *errcode == 42001)
    }

    /// Worth trying again later: no answer, system busy (-1), rate limited (45009, 44990),
    /// or 10060001 (the payment not indexed yet, seconds after its notification).
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Refused { errcode, .. } => {
                matches!(*errcode, -1 | 45009 | 44990 | 10060001) || self.token_invalid()
            }
        }
    }
}

/// A fresh access_token and how long it lives (seconds).
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    pub expires_in: i64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<i64>,
}

/// `upload_shipping_info`'s body, fields as WeChat names them.
#[derive(Debug, Clone, Serialize)]
pub struct ShippingInfo {
    pub order_key: OrderKey,
    /// 1: express delivery.
    pub logistics_type: i32,
    /// 1: UNIFIED_DELIVERY (one parcel for the whole order).
    pub delivery_mode: i32,
    pub shipping_list: Vec<Parcel>,
    /// RFC 3339 with the +08:00 offset.
    pub upload_time: String,
    pub payer: Payer,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderKey {
    /// 2: by WeChat's transaction_id.
    pub order_number_type: i32,
    pub transaction_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Parcel {
    pub tracking_no: String,
    /// The carrier's id in WeChat's delivery list (`express_company_id`).
    pub express_company: String,
    /// What is in it, ≤ 120 characters.
    pub item_desc: String,
    pub contact: Contact,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    /// The receiver's phone, masked but for its last four digits (SF Express requires it).
    pub receiver_contact: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Payer {
    pub openid: String,
}

/// WeChat's id for a carrier the admin can pick (`lifecycle::CARRIERS`), from its delivery
/// list (`get_delivery_list`).
pub fn express_company(carrier: &str) -> Option<&'static str> {
    Some(match carrier {
        "顺丰速运" => "SF",
        "京东物流" => "JD",
        "中国邮政" => "YZPY",
        "EMS" => "EMS",
        "中通快递" => "ZTO",
        "圆通速递" => "YTO",
        "韵达快递" => "YD",
        "申通快递" => "STO",
        "极兔速递" => "JTSD",
        _ => return None,
    })
}

/// A phone number as WeChat wants it in `contact`: all but the last four digits masked.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let keep = chars.len().saturating_sub(4);
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep && i >= 3 { '*' } else { *c })
        .collect()
}

impl MiniProgramApi {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn post(&self, url: &str, body: &impl Serialize) -> Result<Answer, ApiError> {
        let res = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Transport(transport_error(e)))?;
        if !res.status().is_success() {
            return Err(ApiError::Transport(format!(
                "HTTP {}",
                res.status().as_u16()
            )));
        }
        let answer: Answer = res
            .json()
            .await
            .map_err(|e| ApiError::Transport(transport_error(e)))?;
        if answer.errcode != 0 {
            return Err(ApiError::Refused {
                errcode: answer.errcode,
                errmsg: answer.errmsg,
            });
        }
        Ok(answer)
    }

    /// `POST cgi-bin/stable_token`: the current token (the same one while it lives, so
    /// instances do not invalidate each other); `force` asks for a new one (a token WeChat
    /// called invalid).
    pub async fn stable_token(&self, force: bool) -> Result<Token, ApiError> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret,
            "force_refresh": force,
        });
        let a = self.post(&self.url("/cgi-bin/stable_token"), &body).await?;
        match (a.access_token, a.expires_in) {
            (Some(t), Some(s)) if !t.is_empty() && s > 0 => Ok(Token {
                access_token: t,
                expires_in: s,
            }),
            _ => Err(ApiError::Transport(
                "stable_token answered without a token".into(),
            )),
        }
    }

    /// `POST wxa/sec/order/upload_shipping_info`.
    pub async fn upload_shipping_info(
        &self,
        access_token: &str,
        info: &ShippingInfo,
    ) -> Result<(), ApiError> {
        let url = format!(
            "{}?{}",
            self.url("/wxa/sec/order/upload_shipping_info"),
            serde_urlencoded::to_string([("access_token", access_token)]).unwrap_or_default()
        );
        self.post(&url, info).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_keep_their_first_three_and_last_four_digits() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("8000"), "8000");
    }

    #[test]
    fn every_carrier_an_admin_can_pick_has_a_wechat_id() {
        for c in crate::domain::CARRIERS {
            assert!(express_company(c).is_some(), "{c}");
        }
    }

    #[test]
    fn dead_tokens_are_refreshed_and_unindexed_payments_retried() {
        let refused = |errcode| ApiError::Refused {
            errcode,
            errmsg: String::new(),
        };
        assert!(refused(42001).token_invalid());
        assert!(refused(10060001).retryable());
        assert!(!refused(10060003).retryable());
        assert!(!refused(10060004).retryable());
    }
}
