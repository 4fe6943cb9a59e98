//! Daily reconciliation (对账): a platform's bill of a Beijing day, line by line, against the
//! shop's attempts and refunds. The bill is the third door for a payment (after the
//! notification and the query): a payment the shop never heard of is applied through the
//! same `apply_payment` (exactly once, whatever door comes later: the dedupe key is the
//! platform's payment id) and flagged 补单; everything else that differs is an alarm for a
//! person. One instance runs a day at a time (a lease in `job_lease`); a day run again
//! replaces its result, and a payment it applied before is still listed (its pay log row).

use super::gateway::{trade, Gateway};
use super::pay::{self, LogEntry, Proof};
use super::{run, ServiceError};
use crate::domain::{AttemptStatus, Money, Provider, RefundStatus};
use crate::models::pay::PayAttempt;
use crate::models::recon::{self, ReconDiff, ReconRun};
use crate::models::{job_lease, refund as refund_rows};
use crate::payment::bill::{Bill, BillError, BillLine, LineKind};
use crate::payment::connector::TradeState;
use chrono::NaiveDate;
use std::collections::HashMap;

/// The pay log's kind for what the bill door does.
const BILL: &str = "bill";

/// How long one instance holds a day's run.
const LEASE: chrono::Duration = chrono::Duration::minutes(10);

/// What a difference is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Paid at the platform, unpaid in the shop: applied (补单).
    MissingInShop,
    /// Paid in the shop, absent from the bill (and the platform does not call it paid).
    MissingOnPlatform,
    /// The bill's amount is not the shop's.
    AmountMismatch,
    /// A payment of a trade number the shop never made.
    UnknownTrade,
    /// A refund the bill has twice (or more).
    DuplicateRefund,
    /// A refund of the bill that the shop does not have as done.
    RefundMissingInShop,
    /// A refund done in the shop, absent from the bill.
    RefundMissingOnPlatform,
    /// A refund of the bill whose amount is not the shop's.
    RefundAmountMismatch,
    /// A refund of a number the shop never made.
    UnknownRefund,
    /// Paid at the platform, known to the shop, yet not on its attempt.
    Unapplied,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::MissingInShop => "missing_in_shop",
            Kind::MissingOnPlatform => "missing_on_platform",
            Kind::AmountMismatch => "amount_mismatch",
            Kind::UnknownTrade => "unknown_trade",
            Kind::DuplicateRefund => "duplicate_refund",
            Kind::RefundMissingInShop => "refund_missing_in_shop",
            Kind::RefundMissingOnPlatform => "refund_missing_on_platform",
            Kind::RefundAmountMismatch => "refund_amount_mismatch",
            Kind::UnknownRefund => "unknown_refund",
            Kind::Unapplied => "unapplied",
        }
    }

    /// What the admin page calls it.
    pub fn label(kind: &str) -> &'static str {
        match kind {
            "missing_in_shop" => "补单：平台已支付，商城未记录",
            "missing_on_platform" => "商城已支付，平台账单中没有（严重）",
            "amount_mismatch" => "支付金额不一致",
            "unknown_trade" => "平台有，商城无此交易",
            "duplicate_refund" => "平台重复退款",
            "refund_missing_in_shop" => "平台已退款，商城未完成",
            "refund_missing_on_platform" => "商城已退款，平台账单中没有",
            "refund_amount_mismatch" => "退款金额不一致",
            "unknown_refund" => "平台有，商城无此退款",
            "unapplied" => "平台已支付，商城未能入账",
            _ => "其他差异",
        }
    }

    /// `applied` for what the shop settled itself, `alarm` for a person.
    const fn action(self) -> &'static str {
        match self {
            Kind::MissingInShop => "applied",
            _ => "alarm",
        }
    }
}

/// One difference as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: Kind,
    pub out_trade_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub order_id: Option<i32>,
    pub shop: String,
    pub platform: String,
}

/// What a run came to; `None` from `reconcile` when another instance holds the day.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub run: ReconRun,
    pub differences: Vec<Difference>,
}

/// The UTC bounds of a Beijing day, as the shop's timestamps are kept.
fn utc_bounds(day: NaiveDate) -> (chrono::NaiveDateTime, chrono::NaiveDateTime) {
    let start = super::admin::shanghai_midnight(day);
    (start, start + chrono::Duration::days(1))
}

/// A fee in 1/100000 yuan as money text (`¥1.00800`).
pub fn fee_text(e5: i64) -> String {
    let sign = if e5 < 0 { "-" } else { "" };
    format!("{sign}¥{}.{:05}", e5.abs() / 100_000, e5.abs() % 100_000)
}

fn yuan(m: Money) -> String {
    format!("¥{}", m.yuan())
}

fn attempt_state(a: &PayAttempt) -> &'static str {
    match AttemptStatus::from_code(a.status) {
        Some(AttemptStatus::Pending) => "待支付",
        Some(AttemptStatus::Succeeded) => "已支付",
        Some(AttemptStatus::Closed) => "已关闭",
        Some(AttemptStatus::Failed) | None => "失败",
    }
}

/// What the comparison in the database found, before the platform is asked about the
/// shop's payments missing from the bill.
struct Compared {
    differences: Vec<Difference>,
    /// Paid in the shop, not on the bill: asked about at the platform first.
    missing: Vec<PayAttempt>,
}

fn diff(
    kind: Kind,
    no: Option<&str>,
    order_id: Option<i32>,
    shop: String,
    platform: String,
) -> Difference {
    Difference {
        kind,
        out_trade_no: no.map(str::to_string),
        out_refund_no: None,
        order_id,
        shop,
        platform,
    }
}

/// Whether the attempt's payments are on `provider`'s bill (WeChat's v2 and APIv3 are one
/// merchant's one bill).
fn same_bill(a: &PayAttempt, provider: Provider) -> bool {
    Provider::parse(&a.provider).is_some_and(|p| p.id_space() == provider.id_space())
}

/// The providers whose payments one bill of `provider` holds.
fn bill_family(provider: Provider) -> Vec<&'static str> {
    [
        Provider::Wechat,
        Provider::WechatV3,
        Provider::Pingpp,
        Provider::Alipay,
    ]
    .into_iter()
    .filter(|p| p.id_space() == provider.id_space())
    .map(Provider::as_str)
    .collect()
}

/// The pay log's raw body for a bill line.
fn line_text(l: &BillLine) -> String {
    format!(
        "bill line {}: {:?} {} {} {} {}",
        l.line,
        l.kind,
        l.out_trade_no,
        l.payment_id,
        l.out_refund_no.as_deref().unwrap_or(""),
        l.amount.yuan()
    )
}

/// A payment line against the shop's attempt: applied when the shop had missed it.
fn compare_payment(
    conn: &mut crate::db::Conn,
    provider: Provider,
    l: &BillLine,
) -> Result<Option<Difference>, ServiceError> {
    let no = l.out_trade_no.as_str();
    let Some(a) = pay::attempt(conn, no)?.filter(|a| same_bill(a, provider)) else {
        return Ok(Some(diff(
            Kind::UnknownTrade,
            Some(no),
            None,
            "无此交易".into(),
            yuan(l.amount),
        )));
    };
    let order = Some(a.order_id);
    if a.status == AttemptStatus::Succeeded.code() {
        if a.amount != l.amount.fen() {
            let shop = yuan(Money::from_fen(a.amount));
            return Ok(Some(diff(
                Kind::AmountMismatch,
                Some(no),
                order,
                shop,
                yuan(l.amount),
            )));
        }
        // Applied by an earlier run of this door: still this day's 补单.
        const PAID: [&str; 4] = ["paid", "late_paid", "paid_out_of_stock", "paid_twice"];
        if crate::models::pay::logged_as(conn, no, BILL, &PAID)? {
            let d = diff(
                Kind::MissingInShop,
                Some(no),
                order,
                "未支付（已补单）".into(),
                yuan(l.amount),
            );
            return Ok(Some(d));
        }
        return Ok(None);
    }
    let proof = Proof {
        // The attempt's own provider: v2 and APIv3 payments share one WeChat bill.
        provider: Provider::parse(&a.provider).unwrap_or(provider),
        out_trade_no: no.to_string(),
        payment_id: l.payment_id.clone(),
        transaction_no: l.payment_id.clone(),
        amount: l.amount,
    };
    let entry = LogEntry {
        provider,
        kind: BILL,
        raw_body: line_text(l),
        headers: String::new(),
        remote_addr: String::new(),
        verified: true,
    };
    let was = attempt_state(&a).to_string();
    Ok(
        match pay::apply_payment(conn, &proof, &entry, &|_| String::new())? {
            pay::Applied::AmountMismatch { expected } => Some(diff(
                Kind::AmountMismatch,
                Some(no),
                order,
                yuan(expected),
                yuan(l.amount),
            )),
            // Another door applied it a moment ago: nothing differs any more, unless the
            // money found no way onto the attempt (one that failed at creation, say).
            pay::Applied::Duplicate => pay::attempt(conn, no)?
                .filter(|now| now.status != AttemptStatus::Succeeded.code())
                .map(|now| {
                    let shop = format!("{}（未入账）", attempt_state(&now));
                    diff(Kind::Unapplied, Some(no), order, shop, yuan(l.amount))
                }),
            pay::Applied::UnknownTrade => Some(diff(
                Kind::UnknownTrade,
                Some(no),
                None,
                "无此交易".into(),
                yuan(l.amount),
            )),
            _ => Some(diff(
                Kind::MissingInShop,
                Some(no),
                order,
                was,
                yuan(l.amount),
            )),
        },
    )
}

/// The refund lines against the shop's refunds.
fn compare_refunds(
    conn: &mut crate::db::Conn,
    lines: &[&BillLine],
) -> Result<Vec<Difference>, ServiceError> {
    let mut by_no: HashMap<&str, Vec<&BillLine>> = HashMap::new();
    for l in lines {
        let no = l.out_refund_no.as_deref().unwrap_or_default();
        by_no.entry(no).or_default().push(l);
    }
    let mut numbers: Vec<&str> = by_no.keys().copied().collect();
    numbers.sort_unstable();
    let mut out = Vec::new();
    for rno in numbers {
        let copies = &by_no[rno];
        let l = copies[0];
        let found = refund_rows::find_by_no(conn, rno)?;
        let order = found.as_ref().map(|r| r.order_id);
        let mut d = |kind, shop: String, platform: String| {
            let mut x = diff(kind, Some(&l.out_trade_no), order, shop, platform);
            x.out_refund_no = Some(rno.to_string());
            out.push(x);
        };
        if copies.len() > 1 {
            let total = copies.iter().map(|c| c.amount.fen()).sum();
            let platform = format!(
                "退款 {} 次，共 {}",
                copies.len(),
                yuan(Money::from_fen(total))
            );
            d(Kind::DuplicateRefund, "退款 1 次".into(), platform);
        }
        let Some(r) = found else {
            d(Kind::UnknownRefund, "无此退款".into(), yuan(l.amount));
            continue;
        };
        if r.amount != l.amount.fen() {
            d(
                Kind::RefundAmountMismatch,
                yuan(Money::from_fen(r.amount)),
                yuan(l.amount),
            );
        } else if r.status != RefundStatus::Succeeded.code() {
            let state = RefundStatus::from_code(r.status)
                .map(|s| s.label())
                .unwrap_or("未知");
            d(
                Kind::RefundMissingInShop,
                state.to_string(),
                format!("已退款 {}", yuan(l.amount)),
            );
        }
    }
    Ok(out)
}

/// Compares a bill with the shop's records of the day, applying what the shop missed.
fn compare(
    conn: &mut crate::db::Conn,
    provider: Provider,
    day: NaiveDate,
    bill: &Bill,
) -> Result<Compared, ServiceError> {
    let (from, to) = utc_bounds(day);
    let mut differences = Vec::new();
    let payments: Vec<&BillLine> = bill
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Payment)
        .collect();
    let refunds: Vec<&BillLine> = bill
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Refund)
        .collect();
    for l in &payments {
        differences.extend(compare_payment(conn, provider, l)?);
    }
    differences.extend(compare_refunds(conn, &refunds)?);
    let billed: std::collections::HashSet<&str> =
        payments.iter().map(|l| l.out_trade_no.as_str()).collect();
    let family = bill_family(provider);
    let missing = crate::models::pay::succeeded_between(conn, &family, from, to)?
        .into_iter()
        .filter(|a| !billed.contains(a.out_trade_no.as_str()))
        .collect();
    let refunded: std::collections::HashSet<&str> = refunds
        .iter()
        .filter_map(|l| l.out_refund_no.as_deref())
        .collect();
    for r in refund_rows::succeeded_between(conn, &family, from, to)? {
        // Asked for before the day: the platform may have booked it on an earlier day's
        // bill, where it was compared (the shop learns of a refund's end later than it).
        if r.created_at < from {
            continue;
        }
        if !refunded.contains(r.out_refund_no.as_str()) {
            let a = crate::models::pay::attempt_by_id(conn, r.attempt_id)?;
            let mut d = diff(
                Kind::RefundMissingOnPlatform,
                a.as_ref().map(|a| a.out_trade_no.as_str()),
                Some(r.order_id),
                format!("已退款 {}", yuan(Money::from_fen(r.amount))),
                "账单中没有".into(),
            );
            d.out_refund_no = Some(r.out_refund_no.clone());
            differences.push(d);
        }
    }
    Ok(Compared {
        differences,
        missing,
    })
}

/// The run row of a compared bill.
fn summary(day: NaiveDate, provider: Provider, bill: &Bill, differences: usize) -> ReconRun {
    let sum = |k: LineKind| -> (i32, i64) {
        let lines = bill.lines.iter().filter(|l| l.kind == k);
        let n = lines.clone().count();
        (
            i32::try_from(n).unwrap_or(i32::MAX),
            lines.map(|l| l.amount.fen()).sum(),
        )
    };
    let (payments, payment_total) = sum(LineKind::Payment);
    let (refunds, refund_total) = sum(LineKind::Refund);
    ReconRun {
        id: 0,
        bill_date: day.to_string(),
        provider: provider.as_str().into(),
        status: "done".into(),
        payments,
        payment_total,
        refunds,
        refund_total,
        fee_e5: bill.lines.iter().map(|l| l.fee_e5).sum(),
        differences: i32::try_from(differences).unwrap_or(i32::MAX),
        error: None,
        finished_at: crate::models::now(),
    }
}

fn new_diff(run: &ReconRun, d: &Difference) -> ReconDiff {
    let clip = |s: &str| s.chars().take(255).collect::<String>();
    ReconDiff {
        id: 0,
        bill_date: run.bill_date.clone(),
        provider: run.provider.clone(),
        kind: d.kind.as_str().into(),
        out_trade_no: d.out_trade_no.clone(),
        out_refund_no: d.out_refund_no.clone(),
        order_id: d.order_id,
        shop_value: clip(&d.shop),
        platform_value: clip(&d.platform),
        action: d.kind.action().into(),
        resolved_by: None,
        resolved_note: None,
        resolved_at: None,
        created_at: run.finished_at,
    }
}

impl Gateway {
    /// The platforms whose bills the shop fetches: WeChat Pay (v2's bill holds every
    /// payment of the merchant, APIv3's too) and, when configured, the others that can.
    pub fn billed_providers(&self) -> Vec<Provider> {
        // One bill per WeChat Pay merchant, v2 and APIv3 payments alike: APIv3's tradebill
        // when the shop speaks it (an APIv3 merchant may have no v2 key), else v2's.
        let wechat = match self.wechat_v3 {
            Some(_) => Provider::WechatV3,
            None => Provider::Wechat,
        };
        let mut out = vec![wechat];
        out.extend(self.alipay.as_ref().map(|_| Provider::Alipay));
        out.retain(|p| self.connector(*p).is_ok_and(|c| c.has_bill()));
        out
    }

    /// Reconciles `provider`'s bill of the Beijing `day` as `holder`: `None` when another
    /// instance is running that day. A bill not made yet is recorded `not_ready` (the job
    /// tries again later); one that cannot be fetched or read is `failed` with the reason
    /// (naming the bill's line), unless the day already has a good run, which stays.
    pub async fn reconcile(
        &self,
        day: NaiveDate,
        provider: Provider,
        holder: &str,
    ) -> Result<Option<Outcome>, ServiceError> {
        // One holder per call: two tabs of one admin do not share the day's lease.
        let who = format!("{holder}-{:08x}", rand::random::<u32>());
        let name = format!("reconcile:{provider}:{day}");
        let (n, w) = (name.clone(), who.clone());
        let taken = run(&self.db, move |c| {
            Ok(job_lease::acquire(c, &n, &w, crate::models::now(), LEASE)?)
        })
        .await?;
        if !taken {
            return Ok(None);
        }
        let outcome = match self.reconcile_held(day, provider).await {
            // Unreachable, a database error…: the day says so, and is tried again later.
            Err(e) => {
                let failure = BillError::Failed(e.to_string());
                let _ = self.record_failure(day, provider, &failure).await;
                Err(e)
            }
            ok => ok,
        };
        let released = run(&self.db, move |c| {
            Ok(job_lease::release(c, &name, &who, crate::models::now())?)
        })
        .await;
        if let Err(e) = released {
            log::warn!("reconciliation of {provider} {day}: cannot release its lease: {e}");
        }
        outcome.map(Some)
    }

    /// `reconcile` once the day's lease is held.
    async fn reconcile_held(
        &self,
        day: NaiveDate,
        provider: Provider,
    ) -> Result<Outcome, ServiceError> {
        let connector = self.connect(provider).await?;
        let mut no_bill = false;
        let bill = match connector.trade_bill(day).await {
            Ok(b) => b,
            Err(BillError::Empty) => {
                no_bill = true;
                Bill::default()
            }
            Err(BillError::Unsupported) => {
                let why = format!("{provider} has no bill download");
                return Err(ServiceError::Gateway(why));
            }
            Err(e) => return self.record_failure(day, provider, &e).await,
        };
        let b = bill.clone();
        let compared = run(&self.db, move |c| compare(c, provider, day, &b)).await?;
        // "No bill" while the shop has payments that day: a bill not made yet (the platforms
        // do not always say which), tried again later; an older day is compared as it is.
        let yesterday = crate::domain::today_shanghai() - chrono::Duration::days(1);
        if no_bill && !compared.missing.is_empty() && day >= yesterday {
            let why = format!(
                "no bill yet, and {} payment(s) in the shop",
                compared.missing.len()
            );
            return self
                .record_failure(day, provider, &BillError::NotReady(why))
                .await;
        }
        let mut differences = compared.differences;
        let (from, to) = utc_bounds(day);
        let near_midnight = |t: chrono::NaiveDateTime| {
            let hour = chrono::Duration::hours(1);
            t < from + hour || t >= to - hour
        };
        for a in compared.missing {
            // Around midnight the platform may have booked it on the next or previous
            // day's bill; otherwise a paid trade missing from the bill is a difference.
            let state = connector.query(&trade(&a)).await;
            let platform = match state {
                Ok(TradeState::Paid { .. }) if near_midnight(a.updated_at) => continue,
                Ok(TradeState::Paid { .. }) => "账单中没有；查询：已支付".to_string(),
                Ok(TradeState::Unpaid { state, .. }) => format!("账单中没有；查询：{state}"),
                Ok(_) => "账单中没有；查询：无此交易".to_string(),
                Err(e) => format!("账单中没有；查询失败：{}", e.message),
            };
            let shop = format!("已支付 {}", yuan(Money::from_fen(a.amount)));
            let no = a.out_trade_no.clone();
            differences.push(diff(
                Kind::MissingOnPlatform,
                Some(&no),
                Some(a.order_id),
                shop,
                platform,
            ));
        }
        let summary = summary(day, provider, &bill, differences.len());
        let rows: Vec<ReconDiff> = differences.iter().map(|d| new_diff(&summary, d)).collect();
        let r = summary.clone();
        run(&self.db, move |c| {
            crate::db::write_tx(c, |c| Ok(recon::replace(c, &r, &rows)?))
        })
        .await?;
        log::info!(
            "reconciled {provider} {day}: {} payment(s), {} refund(s), {} difference(s)",
            summary.payments,
            summary.refunds,
            differences.len()
        );
        Ok(Outcome {
            run: summary,
            differences,
        })
    }

    async fn record_failure(
        &self,
        day: NaiveDate,
        provider: Provider,
        e: &BillError,
    ) -> Result<Outcome, ServiceError> {
        let status = match e {
            BillError::NotReady(_) => "not_ready",
            _ => "failed",
        };
        log::warn!("reconciliation of {provider} {day}: {e}");
        let mut r = summary(day, provider, &Bill::default(), 0);
        r.status = status.into();
        r.error = Some(e.to_string().chars().take(255).collect());
        let (row, key) = (r.clone(), day.to_string());
        run(&self.db, move |c| {
            crate::db::write_tx(c, |c| {
                let done = recon::run_of(c, &key, provider.as_str())?
                    .is_some_and(|old| old.status == "done");
                if !done {
                    recon::replace(c, &row, &[])?;
                }
                Ok(())
            })
        })
        .await?;
        Ok(Outcome {
            run: r,
            differences: Vec::new(),
        })
    }
}
