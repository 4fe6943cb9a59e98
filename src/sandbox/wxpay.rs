//! WeChat Pay v2 as the platform answers it: `pay/unifiedorder`, `pay/orderquery`,
//! `pay/closeorder`, checking appid, mch_id and sign, and paying an order.

use super::{deliver, random_digits, random_id, RefundRefusal, Sandbox, WxApi, WxOrder, WxRefund};
use crate::payment::wechat::client::{nonce, params as p};
use crate::payment::wechat::sign::{sign, verify, Params, SignType};
use crate::payment::wechat::xml::{parse, to_xml};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// WeChat's `yyyyMMddHHmmss` (Beijing time) as unix seconds.
fn beijing_unix(t: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok()?;
    naive
        .and_local_timezone(crate::domain::shanghai())
        .single()
        .map(|d| d.timestamp())
}

fn fail(msg: &str) -> String {
    to_xml(&p([
        ("return_code", "FAIL".into()),
        ("return_msg", msg.into()),
    ]))
}

impl Sandbox {
    /// Signs a SUCCESS reply with the merchant key; `result` carries the business fields.
    fn reply(&self, sign_type: SignType, mut result: Params) -> String {
        result.insert("return_code".into(), "SUCCESS".into());
        result.insert("return_msg".into(), "OK".into());
        // The appid of the trade the reply is about, else the mini-program's.
        result
            .entry("appid".into())
            .or_insert_with(|| self.wechat_appid.clone());
        result.insert("mch_id".into(), self.wechat_mch_id.clone());
        result.insert("nonce_str".into(), nonce());
        if sign_type == SignType::HmacSha256 {
            result.insert("sign_type".into(), sign_type.as_str().into());
        }
        let s = sign(&result, &self.wechat_key, sign_type);
        result.insert("sign".into(), s);
        to_xml(&result)
    }

    fn business_error(&self, sign_type: SignType, code: &str, desc: &str) -> String {
        self.reply(
            sign_type,
            p([
                ("result_code", "FAIL".into()),
                ("err_code", code.into()),
                ("err_code_des", desc.into()),
            ]),
        )
    }

    /// Checks the request's XML, merchant and signature; the parsed fields or the reply.
    pub(super) fn authenticate(&self, body: &[u8]) -> Result<(Params, SignType), String> {
        if body.is_empty() {
            return Err(fail("POST_DATA_EMPTY"));
        }
        let fields = parse(body).map_err(|e| fail(&format!("XML_FORMAT_ERROR: {e}")))?;
        let sign_type = match fields.get("sign_type") {
            None => SignType::Md5,
            Some(t) => SignType::parse(t).ok_or_else(|| fail("sign_type 参数错误"))?,
        };
        if !verify(&fields, &self.wechat_key, Some(sign_type)) {
            return Err(fail("签名错误"));
        }
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        if !self.bound_appid(get("appid")) {
            return Err(self.business_error(sign_type, "APPID_NOT_EXIST", "APPID不存在"));
        }
        if get("mch_id") != self.wechat_mch_id {
            return Err(self.business_error(sign_type, "MCHID_NOT_EXIST", "MCHID不存在"));
        }
        Ok((fields, sign_type))
    }

    /// `POST /pay/unifiedorder`.
    pub fn wx_unifiedorder(&self, body: &[u8]) -> String {
        let (f, st) = match self.authenticate(body) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        for k in [
            "body",
            "out_trade_no",
            "total_fee",
            "spbill_create_ip",
            "notify_url",
            "trade_type",
        ] {
            if get(k).is_empty() {
                return self.business_error(st, "LACK_PARAMS", &format!("缺少参数 {k}"));
            }
        }
        // Field limits of the live gateway: body String(128) counted in UTF-8 bytes,
        // notify_url at most 256 characters and without a query string.
        if get("body").len() > 128 {
            return self.business_error(st, "PARAM_ERROR", "body 参数长度有误（最多 128 字节）");
        }
        let notify_url = get("notify_url");
        if notify_url.chars().count() > 256 || notify_url.contains('?') {
            return self.business_error(st, "PARAM_ERROR", "notify_url 参数格式错误，不能带参数");
        }
        let trade_type = get("trade_type");
        if trade_type == "JSAPI" && get("openid").is_empty() {
            return self.business_error(st, "LACK_PARAMS", "JSAPI 支付必须传 openid");
        }
        // The live gateway takes IPv4 text only, whatever the trade type.
        if get("spbill_create_ip").parse::<Ipv4Addr>().is_err() {
            return fail("invalid spbill_create_ip");
        }
        if trade_type == "JSAPI" {
            // An openid belongs to the appid that logged the user in.
            let issuer = self.state().openids.get(&get("openid")).cloned();
            match issuer {
                None => return fail("invalid openid"),
                Some(appid) if appid != get("appid") => return fail("appid and openid not match"),
                Some(_) => {}
            }
        }
        if trade_type == "NATIVE" && get("product_id").is_empty() {
            return self.business_error(st, "LACK_PARAMS", "NATIVE 支付必须传 product_id");
        }
        if !matches!(trade_type.as_str(), "JSAPI" | "NATIVE" | "APP" | "MWEB") {
            return self.business_error(st, "PARAM_ERROR", "trade_type 错误");
        }
        let total_fee: i64 = match get("total_fee").parse() {
            Ok(n) if n > 0 => n,
            _ => return self.business_error(st, "PARAM_ERROR", "total_fee 必须为正整数"),
        };
        let no = get("out_trade_no");
        let ok_no = (1..=32).contains(&no.len())
            && no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
        if !ok_no {
            return self.business_error(st, "PARAM_ERROR", "out_trade_no 格式错误");
        }
        let now = self.now();
        let time_expire = match f.get("time_expire") {
            None => None,
            Some(t) => match beijing_unix(t) {
                Some(at) => Some(at),
                None => return self.business_error(st, "PARAM_ERROR", "time_expire 格式错误"),
            },
        };
        // The live gateway's rule: at least 1 minute for micropay, 5 for everything else.
        if time_expire.is_some_and(|at| at - now < 5 * 60) {
            return self.business_error(
                st,
                "PARAM_ERROR",
                "time_expire时间过短，刷卡至少1分钟，其他5分钟",
            );
        }
        let mut state = self.state();
        if let Some(o) = state.wx.get(&no) {
            let same =
                o.total_fee == total_fee && o.trade_type == trade_type && o.body == get("body");
            let answer = match (o.trade_state, same) {
                ("SUCCESS" | "REFUND", _) => Err(("ORDERPAID", "该订单已支付")),
                ("CLOSED", _) => Err(("ORDERCLOSED", "该订单已关闭")),
                (_, false) => Err(("OUT_TRADE_NO_USED", "商户订单号重复")),
                (_, true) => Ok((o.prepay_id.clone(), o.code_url.clone())),
            };
            drop(state);
            return match answer {
                Ok((prepay_id, code_url)) => {
                    self.prepay_reply(st, &trade_type, prepay_id, code_url)
                }
                Err((code, desc)) => self.business_error(st, code, desc),
            };
        }
        let prepay_id = format!(
            "wx{}{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            random_id(18).to_lowercase()
        );
        let code_url = (trade_type == "NATIVE")
            .then(|| format!("weixin://wxpay/bizpayurl?pr={}", random_id(7)));
        state.wx.insert(
            no.clone(),
            WxOrder {
                api: WxApi::V2,
                appid: get("appid"),
                out_trade_no: no,
                body: get("body"),
                total_fee,
                trade_type: trade_type.clone(),
                openid: get("openid"),
                notify_url: get("notify_url"),
                prepay_id: prepay_id.clone(),
                code_url: code_url.clone(),
                h5_url: None,
                attach: get("attach"),
                sign_type: st.as_str().into(),
                trade_state: "NOTPAY",
                transaction_id: None,
                time_end: None,
                created_at: now,
                time_expire,
            },
        );
        drop(state);
        self.prepay_reply(st, &trade_type, prepay_id, code_url)
    }

    fn prepay_reply(
        &self,
        st: SignType,
        trade_type: &str,
        prepay_id: String,
        code_url: Option<String>,
    ) -> String {
        self.reply(
            st,
            p([
                ("result_code", "SUCCESS".into()),
                ("trade_type", trade_type.into()),
                ("prepay_id", prepay_id),
                ("code_url", code_url.unwrap_or_default()),
            ]),
        )
    }

    /// `POST /pay/orderquery`.
    pub fn wx_orderquery(&self, body: &[u8]) -> String {
        let (f, st) = match self.authenticate(body) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let state = self.state();
        let by_tx = f.get("transaction_id").filter(|t| !t.is_empty());
        let found = match by_tx {
            Some(t) => state
                .wx
                .values()
                .find(|o| o.transaction_id.as_deref() == Some(t.as_str())),
            None => f.get("out_trade_no").and_then(|n| state.wx.get(n)),
        };
        // The bill_omit fault: a paid trade the platform has no record of.
        let lost = |o: &&super::WxOrder| {
            o.trade_state != "NOTPAY" && state.faults_for(&o.out_trade_no).bill_omit
        };
        let Some(o) = found.filter(|o| !lost(o)).cloned() else {
            drop(state);
            return self.business_error(st, "ORDERNOTEXIST", "此交易订单号不存在");
        };
        drop(state);
        let paid = matches!(o.trade_state, "SUCCESS" | "REFUND");
        let desc = match o.trade_state {
            "SUCCESS" => "支付成功",
            "REFUND" => "转入退款",
            "CLOSED" => "订单已关闭",
            _ => "订单未支付",
        };
        let mut fields = p([
            ("result_code", "SUCCESS".into()),
            ("appid", o.appid.clone()),
            ("out_trade_no", o.out_trade_no.clone()),
            ("trade_state", o.trade_state.into()),
            ("trade_state_desc", desc.into()),
        ]);
        if paid {
            fields.extend(p([
                ("openid", o.openid.clone()),
                ("is_subscribe", "N".into()),
                ("trade_type", o.trade_type.clone()),
                ("bank_type", "CFT".into()),
                ("total_fee", o.total_fee.to_string()),
                ("cash_fee", o.total_fee.to_string()),
                ("fee_type", "CNY".into()),
                (
                    "transaction_id",
                    o.transaction_id.clone().unwrap_or_default(),
                ),
                ("time_end", o.time_end.clone().unwrap_or_default()),
            ]));
        }
        self.reply(st, fields)
    }

    /// `POST /pay/closeorder`.
    pub fn wx_closeorder(&self, body: &[u8]) -> String {
        let (f, st) = match self.authenticate(body) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let no = f.get("out_trade_no").cloned().unwrap_or_default();
        let mut state = self.state();
        let outcome = match state.wx.get_mut(&no) {
            None => Err(("ORDERNOTEXIST", "此交易订单号不存在")),
            Some(o) if matches!(o.trade_state, "SUCCESS" | "REFUND") => {
                Err(("ORDERPAID", "订单已支付，不能发起关单"))
            }
            Some(o) => {
                o.trade_state = "CLOSED";
                Ok(())
            }
        };
        drop(state);
        match outcome {
            Ok(()) => self.reply(st, p([("result_code", "SUCCESS".into())])),
            Err((code, desc)) => self.business_error(st, code, desc),
        }
    }

    /// The order a prepay_id or code_url belongs to.
    pub fn wx_find(&self, prepay_id: Option<&str>, code_url: Option<&str>) -> Option<WxOrder> {
        let state = self.state();
        state
            .wx
            .values()
            .find(|o| {
                prepay_id.is_some_and(|p| p == o.prepay_id)
                    || (code_url.is_some() && o.code_url.as_deref() == code_url)
            })
            .cloned()
    }

    /// The shopper confirms on the phone: NOTPAY -> SUCCESS, then the notification goes out.
    pub fn wx_pay(self: &Arc<Self>, out_trade_no: &str) -> Result<WxOrder, String> {
        let now = self.now();
        let mut state = self.state();
        let o = state.wx.get_mut(out_trade_no).ok_or("订单不存在")?;
        match o.trade_state {
            "NOTPAY" => {}
            "SUCCESS" | "REFUND" => return Err("订单已支付".into()),
            _ => return Err("订单已关闭".into()),
        }
        if o.time_expire.is_some_and(|t| now > t) {
            return Err("订单已过期，请重新下单".into());
        }
        let life = if o.trade_type == "MWEB" {
            super::H5_URL_LIFE
        } else {
            super::CREDENTIAL_LIFE
        };
        if now > o.created_at + life {
            return Err(if o.trade_type == "NATIVE" {
                "二维码已过期，请刷新后重新扫码".into()
            } else {
                "支付已过期（prepay_id 有效期 2 小时）".into()
            });
        }
        o.trade_state = "SUCCESS";
        o.transaction_id = Some(format!("42000{}", random_digits(23)));
        o.time_end = Some(
            chrono::Utc::now()
                .with_timezone(&crate::domain::shanghai())
                .format("%Y%m%d%H%M%S")
                .to_string(),
        );
        let paid = o.clone();
        let faults = state.faults_for(out_trade_no);
        drop(state);
        let msg = match paid.api {
            WxApi::V3 => self.v3_payment_message(&paid, &faults),
            WxApi::V2 => deliver::Message {
                provider: "wechat",
                out_trade_no: paid.out_trade_no.clone(),
                url: paid.notify_url.clone(),
                content_type: "text/xml",
                headers: Vec::new(),
                v3_signing: None,
                body: self.wx_notification(&paid, faults.wrong_amount, faults.bad_signature),
            },
        };
        deliver::send(self.clone(), &faults, msg);
        Ok(paid)
    }

    /// The payment notification for a paid order, as WeChat signs it.
    pub fn wx_notification(&self, o: &WxOrder, wrong_amount: bool, bad_signature: bool) -> String {
        let fee = o.total_fee + i64::from(wrong_amount);
        let mut f = p([
            ("return_code", "SUCCESS".into()),
            ("appid", o.appid.clone()),
            ("mch_id", self.wechat_mch_id.clone()),
            ("nonce_str", nonce()),
            ("result_code", "SUCCESS".into()),
            ("openid", o.openid.clone()),
            ("is_subscribe", "N".into()),
            ("trade_type", o.trade_type.clone()),
            ("bank_type", "CFT".into()),
            ("total_fee", fee.to_string()),
            ("fee_type", "CNY".into()),
            ("cash_fee", fee.to_string()),
            (
                "transaction_id",
                o.transaction_id.clone().unwrap_or_default(),
            ),
            ("out_trade_no", o.out_trade_no.clone()),
            ("time_end", o.time_end.clone().unwrap_or_default()),
        ]);
        let st = SignType::parse(&o.sign_type).unwrap_or(SignType::Md5);
        // WeChat leaves sign_type out of notifications even for HMAC orders (a known quirk).
        let mut s = sign(&f, &self.wechat_key, st);
        if bad_signature {
            s = s.chars().rev().collect();
        }
        f.insert("sign".into(), s);
        to_xml(&f)
    }

    /// `POST /secapi/pay/refund`: accepted (PROCESSING), done shortly after with a refund
    /// notification whose `req_info` is encrypted with the MD5 of the API key.
    pub fn wx_refund(self: &Arc<Self>, body: &[u8]) -> (String, u64) {
        let (f, st) = match self.authenticate(body) {
            Ok(x) => x,
            Err(reply) => return (reply, 0),
        };
        let (reply, faults) = self.wx_refund_verified(&f, st);
        let trade = f.get("out_trade_no").cloned().unwrap_or_default();
        let Some(faults) = faults else {
            return (reply, 0);
        };
        // The money is taken (the refund is recorded above); the answer may still go wrong.
        if self.refund_error_due(&trade, &faults) {
            return (
                self.business_error(st, "SYSTEMERROR", "系统超时，请使用相同参数再次调用"),
                0,
            );
        }
        (reply, faults.refund_hang_ms)
    }

    /// A refund request whose signature checked out; the faults of its trade when the
    /// refund was taken (new or the same again).
    fn wx_refund_verified(
        self: &Arc<Self>,
        f: &Params,
        st: SignType,
    ) -> (String, Option<super::Faults>) {
        let reply = self.wx_refund_reply(f, st);
        let faults = match &reply {
            Ok(_) => Some(
                self.state().faults_for(
                    f.get("out_trade_no")
                        .map(String::as_str)
                        .unwrap_or_default(),
                ),
            ),
            Err(_) => None,
        };
        (reply.unwrap_or_else(|e| e), faults)
    }

    fn wx_refund_reply(self: &Arc<Self>, f: &Params, st: SignType) -> Result<String, String> {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        for k in ["out_trade_no", "out_refund_no", "total_fee", "refund_fee"] {
            if get(k).is_empty() {
                return Err(self.business_error(st, "LACK_PARAMS", &format!("缺少参数 {k}")));
            }
        }
        let (Ok(total), Ok(fee)) = (
            get("total_fee").parse::<i64>(),
            get("refund_fee").parse::<i64>(),
        ) else {
            return Err(self.business_error(st, "PARAM_ERROR", "金额必须为整数"));
        };
        let (no, rno) = (get("out_trade_no"), get("out_refund_no"));
        let now = self.now();
        let mut state = self.state();
        let Some(order) = state.wx.get(&no).cloned() else {
            return Err(self.business_error(st, "ORDERNOTEXIST", "订单不存在"));
        };
        if !matches!(order.trade_state, "SUCCESS" | "REFUND") {
            return Err(self.business_error(st, "TRADE_STATE_ERROR", "订单状态错误"));
        }
        if total != order.total_fee {
            return Err(self.business_error(
                st,
                "PARAM_ERROR",
                "订单金额或退款金额与之前请求不一致",
            ));
        }
        let (refund, new) = match state.take_wx_refund(&no, &rno, fee, total, now) {
            Ok(taken) => taken,
            Err(RefundRefusal::OtherRefund) => {
                return Err(self.business_error(st, "PARAM_ERROR", "退款单号已用于其他退款"))
            }
            Err(RefundRefusal::NotEnough) => {
                return Err(self.business_error(st, "NOTENOUGH", "退款金额超过订单可退金额"))
            }
        };
        let faults = state.faults_for(&no);
        drop(state);
        if new {
            self.finish_wx_refund(refund.clone(), order.clone(), get("notify_url"), faults);
        }
        Ok(self.reply(
            st,
            p([
                ("result_code", "SUCCESS".into()),
                (
                    "transaction_id",
                    order.transaction_id.clone().unwrap_or_default(),
                ),
                ("out_trade_no", no),
                ("out_refund_no", refund.out_refund_no.clone()),
                ("refund_id", refund.refund_id.clone()),
                ("refund_fee", refund.refund_fee.to_string()),
                ("total_fee", total.to_string()),
                ("cash_fee", total.to_string()),
            ]),
        ))
    }

    fn finish_wx_refund(
        self: &Arc<Self>,
        r: WxRefund,
        order: WxOrder,
        notify_url: String,
        faults: super::Faults,
    ) {
        let sb = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let status = faults.refund_end();
            sb.end_refund(&r, status);
            if notify_url.is_empty() {
                return;
            }
            let now = chrono::Utc::now().with_timezone(&crate::domain::shanghai());
            let inner = p([
                ("out_refund_no", r.out_refund_no.clone()),
                ("out_trade_no", r.out_trade_no.clone()),
                ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS".into()),
                (
                    "refund_fee",
                    (r.refund_fee + i64::from(faults.wrong_amount)).to_string(),
                ),
                ("refund_id", r.refund_id.clone()),
                ("refund_recv_accout", "支付用户零钱".into()),
                ("refund_request_source", "API".into()),
                ("refund_status", status.into()),
                ("settlement_refund_fee", r.refund_fee.to_string()),
                ("settlement_total_fee", order.total_fee.to_string()),
                ("success_time", now.format("%Y-%m-%d %H:%M:%S").to_string()),
                ("total_fee", order.total_fee.to_string()),
                (
                    "transaction_id",
                    order.transaction_id.clone().unwrap_or_default(),
                ),
            ]);
            let root = to_xml(&inner)
                .replacen("<xml>", "<root>", 1)
                .replace("</xml>", "</root>");
            let key = if faults.bad_signature {
                "not-the-key"
            } else {
                sb.wechat_key.as_str()
            };
            let outer = p([
                ("return_code", "SUCCESS".into()),
                ("appid", order.appid.clone()),
                ("mch_id", sb.wechat_mch_id.clone()),
                ("nonce_str", nonce()),
                (
                    "req_info",
                    crate::payment::wechat::refund::encrypt_req_info(&root, key),
                ),
            ]);
            let msg = deliver::Message {
                provider: "wechat",
                out_trade_no: r.out_trade_no.clone(),
                url: notify_url,
                content_type: "text/xml",
                headers: Vec::new(),
                v3_signing: None,
                body: to_xml(&outer),
            };
            deliver::send(sb, &faults, msg);
        });
    }

    /// A taken refund reaches its end: its status, and the trade's `REFUND` state when
    /// it succeeded.
    pub(super) fn end_refund(&self, r: &WxRefund, status: &'static str) {
        let mut st = self.state();
        if let Some(x) = st.wx_refunds.get_mut(&r.out_refund_no) {
            x.status = status;
        }
        if let Some(o) = st
            .wx
            .get_mut(&r.out_trade_no)
            .filter(|_| status == "SUCCESS")
        {
            o.trade_state = "REFUND";
        }
    }

    /// `POST /pay/refundquery` by out_refund_no.
    pub fn wx_refundquery(&self, body: &[u8]) -> String {
        let (f, st) = match self.authenticate(body) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let rno = f.get("out_refund_no").cloned().unwrap_or_default();
        let found = self.state().wx_refunds.get(&rno).cloned();
        let Some(r) = found else {
            return self.business_error(st, "REFUNDNOTEXIST", "退款订单查询失败");
        };
        self.reply(
            st,
            p([
                ("result_code", "SUCCESS".into()),
                ("out_trade_no", r.out_trade_no.clone()),
                ("refund_count", "1".into()),
                ("out_refund_no_0", r.out_refund_no.clone()),
                ("refund_id_0", r.refund_id.clone()),
                ("refund_fee_0", r.refund_fee.to_string()),
                ("refund_status_0", r.status.into()),
            ]),
        )
    }
}
