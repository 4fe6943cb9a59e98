//! Talking to the payment platforms, in the order that keeps the books right: record the
//! intent and commit, call the platform with no transaction open, record the result. The
//! only async part of the service layer; every database step is a synchronous service call
//! on the blocking pool. Platforms are reached through `payment::connector::Connector`,
//! picked in one place (`Gateway::connector`); the flows are split by what they do:
//! `create`, `query` (and the sweeps), `close`, and refunds in `services::refund`.

mod certificates;
mod close;
mod create;
mod query;

pub use certificates::CertificateMemory;
pub use create::Prepared;

use super::pay::{self, LogEntry};
use super::{run, ServiceError};
use crate::config::{ApiVersion, Cashier};
use crate::db::Db;
use crate::domain::{Channel, Money, Provider};
use crate::models::pay::PayAttempt;
use crate::payment::alipay::AlipayConnector;
use crate::payment::connector::{Connector, Trade};
use crate::payment::pingpp::connector::PingppConnector;
use crate::payment::wechat::connector::WechatV2;
use crate::payment::wechat_v3::connector::WechatV3;

/// Everything needed to reach the platforms.
#[derive(Clone)]
pub struct Gateway {
    pub db: Db,
    pub wechat: WechatV2,
    pub pingpp: PingppConnector,
    /// WeChat Pay APIv3, when configured.
    pub wechat_v3: Option<WechatV3>,
    /// Alipay direct, when configured.
    pub alipay: Option<AlipayConnector>,
    /// Its platform certificates are downloaded (no WeChat Pay public key configured).
    pub v3_certificate_mode: bool,
    /// What the process remembers about its platform certificates.
    pub v3_memory: std::sync::Arc<certificates::CertificateMemory>,
    /// Which WeChat Pay API new WeChat payments use.
    pub wechat_version: ApiVersion,
    /// Who takes Alipay scans: Ping++, or the shop's own Alipay account.
    pub cashier: Cashier,
    /// The mini-program's server API (发货信息管理, its access_token).
    pub mini: crate::payment::wechat::shipping::MiniProgramApi,
    /// Counts the payments the query door applies.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// A pay_log row for a call the shop made.
pub(crate) fn outbound(provider: Provider, kind: &'static str, body: String) -> LogEntry {
    LogEntry {
        provider,
        kind,
        raw_body: body,
        headers: String::new(),
        remote_addr: String::new(),
        verified: true,
    }
}

/// At most `n` characters (pay_log outcomes are 64).
pub(crate) fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// An attempt as its connector sees it.
pub(crate) fn trade(a: &PayAttempt) -> Trade {
    Trade {
        channel: Channel::parse(&a.channel),
        out_trade_no: a.out_trade_no.clone(),
        provider_ref: a.provider_ref.clone(),
        credential: a.credential.clone(),
        amount: Money::from_fen(a.amount),
        expires_at: a.expires_at,
    }
}

impl Gateway {
    /// The one dispatch point: the platform that serves `provider`.
    pub fn connector(&self, provider: Provider) -> Result<&dyn Connector, ServiceError> {
        match provider {
            Provider::Wechat => Ok(&self.wechat),
            Provider::WechatV3 => match &self.wechat_v3 {
                Some(v3) => Ok(v3),
                None => Err(ServiceError::Gateway(
                    "WeChat Pay APIv3 is not configured (wechat.api_version)".into(),
                )),
            },
            Provider::Pingpp => Ok(&self.pingpp),
            Provider::Alipay => match &self.alipay {
                Some(a) => Ok(a),
                None => Err(ServiceError::Gateway(
                    "Alipay direct is not configured".into(),
                )),
            },
        }
    }

    /// The connector of `provider`, ready to be believed: APIv3 in platform-certificate mode
    /// first has certificates that are not about to expire (see `certificates`).
    pub(crate) async fn connect(&self, provider: Provider) -> Result<&dyn Connector, ServiceError> {
        if provider == Provider::WechatV3 {
            self.v3_certificates(None).await?;
        }
        self.connector(provider)
    }

    /// The connector of an attempt, by the provider recorded on it (an attempt stays with
    /// the platform that created it, whatever the configuration says today).
    pub(crate) async fn connector_of(
        &self,
        a: &PayAttempt,
    ) -> Result<(Provider, &dyn Connector), ServiceError> {
        let provider = Provider::parse(&a.provider)
            .ok_or_else(|| ServiceError::Internal(format!("provider {}", a.provider)))?;
        Ok((provider, self.connect(provider).await?))
    }

    /// The platform that takes new payments on `channel`.
    pub fn provider_for(&self, channel: Channel) -> Provider {
        let wechat = match self.wechat_version {
            ApiVersion::V3 => Provider::WechatV3,
            ApiVersion::V2 => Provider::Wechat,
        };
        let direct = self.cashier == Cashier::Direct;
        match channel.provider() {
            Provider::Wechat => wechat,
            Provider::Pingpp if direct && channel.is_alipay() => Provider::Alipay,
            Provider::Pingpp if direct && channel.is_direct_wechat() => wechat,
            other => other,
        }
    }

    pub(crate) async fn log(
        &self,
        entry: LogEntry,
        out_trade_no: String,
        outcome: String,
    ) -> Result<(), ServiceError> {
        run(&self.db, move |c| {
            pay::log_only(c, &entry, Some(&out_trade_no), &outcome, "")
        })
        .await
    }
}
