//! `WeixinJSBridge.invoke("getBrandWCPayRequest", …)` as the WeChat browser plays it: the
//! launch parameters a cashier page hands over are checked as WeChat checks them (the
//! prepay_id is a live JSAPI order made under that appid, the user paying is the payer it
//! was made for, `paySign` verifies: v2 with the merchant's API key over the five signed
//! keys, v3 with the merchant's RSA key over `appId\ntimeStamp\nnonceStr\npackage\n`), then
//! the user confirms, the order is paid and its notification goes out. The page's side is
//! `static/sandbox/jsbridge.js`, served by the sandbox.

use super::{Sandbox, WxApi, WxOrder};
use crate::payment::wechat::sign::{verify, Params, SignType};
use serde::Deserialize;
use std::sync::Arc;

/// What the page passes to `getBrandWCPayRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Launch {
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub nonce_str: String,
    #[serde(default)]
    pub package: String,
    #[serde(default)]
    pub sign_type: String,
    #[serde(default)]
    pub pay_sign: String,
}

impl Launch {
    /// Whether `paySign` is the merchant's signature for an order of `api` signed with
    /// `sign_type` (v2: MD5 or HMAC-SHA256, as at unifiedorder; v3: RSA).
    fn signed(&self, sb: &Sandbox, api: WxApi, sign_type: &str) -> bool {
        match api {
            WxApi::V2 => {
                let Some(kind) = SignType::parse(&self.sign_type) else {
                    return false;
                };
                let mut p: Params = [
                    ("appId", &self.app_id),
                    ("timeStamp", &self.time_stamp),
                    ("nonceStr", &self.nonce_str),
                    ("package", &self.package),
                    ("signType", &self.sign_type),
                    ("sign", &self.pay_sign),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
                p.retain(|_, v| !v.is_empty());
                kind.as_str() == sign_type && verify(&p, &sb.wechat_key, Some(kind))
            }
            WxApi::V3 => {
                let message = format!(
                    "{}\n{}\n{}\n{}\n",
                    self.app_id, self.time_stamp, self.nonce_str, self.package
                );
                self.sign_type == "RSA" && sb.v3.merchant_signed(message.as_bytes(), &self.pay_sign)
            }
        }
    }
}

impl Sandbox {
    /// The WeChat user `user` (None: not in WeChat) confirms a JSAPI payment: the order it
    /// paid, or WeChat's `err_desc`.
    pub fn bridge_pay(self: &Arc<Self>, user: Option<&str>, l: &Launch) -> Result<WxOrder, String> {
        let user = user.ok_or("请在微信客户端中打开")?;
        let prepay_id = l
            .package
            .strip_prefix("prepay_id=")
            .filter(|p| !p.is_empty())
            .ok_or("package 参数错误")?;
        if l.time_stamp.is_empty() || !l.time_stamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err("timeStamp 参数错误".into());
        }
        if l.nonce_str.is_empty() || l.nonce_str.len() > 32 {
            return Err("nonceStr 参数错误".into());
        }
        let o = self
            .wx_find(Some(prepay_id), None)
            .filter(|o| o.trade_type == "JSAPI")
            .ok_or("prepay_id 无效或已过期")?;
        if o.appid != l.app_id {
            return Err("appId 与下单时的 appid 不一致".into());
        }
        if !l.signed(self, o.api, &o.sign_type) {
            return Err("支付验证签名失败".into());
        }
        if o.openid != super::wxlogin::openid_of(&o.appid, user) {
            return Err("当前用户与下单用户不一致".into());
        }
        self.wx_pay(&o.out_trade_no)
    }
}
