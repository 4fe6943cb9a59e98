//! `/admin/reconcile` (对账): a day's reconciliation per platform (counts, totals, fees), its
//! differences with both sides' values, 重新对账 for the day, 标记已处理 with a note (kept
//! with the admin's name), and the day as CSV. A difference's order page has 重新查询.

use super::layout;
use super::orders::{csv_field, csv_text_id};
use crate::controllers::error::PageError;
use crate::controllers::session::Admin;
use crate::controllers::{csrf_form, db, render, see_other};
use crate::domain::{format_shanghai, Money};
use crate::models::recon::{self, ReconDiff, ReconRun};
use crate::services::reconcile::{fee_text, Kind};
use crate::startup::AppState;
use crate::views::admin::{NavSection, ReconDiffRow, ReconPage, ReconRunRow};
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct DayQuery {
    date: Option<String>,
    done: Option<String>,
}

/// The day asked for (`YYYY-MM-DD`), else yesterday in Beijing.
fn day_of(date: Option<&str>) -> Result<NaiveDate, PageError> {
    match date.filter(|d| !d.is_empty()) {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| PageError::bad_request("日期格式应为 YYYY-MM-DD。")),
        None => Ok(crate::domain::today_shanghai() - chrono::Duration::days(1)),
    }
}

fn run_row(r: &ReconRun) -> ReconRunRow {
    ReconRunRow {
        provider: r.provider.clone(),
        status_label: match r.status.as_str() {
            "done" => "已完成",
            "not_ready" => "账单未生成，稍后重试",
            _ => "失败",
        }
        .into(),
        status: r.status.clone(),
        payments: r.payments,
        payment_total: Money::from_fen(r.payment_total).to_string(),
        refunds: r.refunds,
        refund_total: Money::from_fen(r.refund_total).to_string(),
        fees: fee_text(r.fee_e5),
        differences: r.differences,
        error: r.error.clone(),
        finished_at: format_shanghai(r.finished_at),
    }
}

fn diff_row(d: &ReconDiff) -> ReconDiffRow {
    ReconDiffRow {
        id: d.id,
        provider: d.provider.clone(),
        kind: d.kind.clone(),
        kind_label: Kind::label(&d.kind).into(),
        order_id: d.order_id,
        out_trade_no: d.out_trade_no.clone().unwrap_or_default(),
        out_refund_no: d.out_refund_no.clone().unwrap_or_default(),
        shop_value: d.shop_value.clone(),
        platform_value: d.platform_value.clone(),
        action: d.action.clone(),
        resolved: d.resolved_at.map(|at| {
            format!(
                "{} 于 {} 处理：{}",
                d.resolved_by.as_deref().unwrap_or(""),
                format_shanghai(at),
                d.resolved_note.as_deref().unwrap_or("")
            )
        }),
    }
}

/// `GET /admin/reconcile?date=`.
pub async fn page(
    state: web::Data<AppState>,
    who: Admin,
    q: web::Query<DayQuery>,
) -> Result<HttpResponse, PageError> {
    let day = day_of(q.date.as_deref())?;
    let key = day.to_string();
    let (runs, diffs, recent) = db(&state, move |c| {
        let runs: Vec<ReconRun> = recon::recent_runs(c, 500)?
            .into_iter()
            .filter(|r| r.bill_date == key)
            .collect();
        Ok((runs, recon::diffs_of(c, &key)?, recon::recent_runs(c, 60)?))
    })
    .await?;
    let mut days: Vec<String> = recent.into_iter().map(|r| r.bill_date).collect();
    days.dedup();
    let flash = match q.done.as_deref() {
        Some("run") => Some("对账已完成".to_string()),
        Some("resolved") => Some("差异已标记为已处理".to_string()),
        _ => None,
    };
    render(
        &state,
        &ReconPage {
            layout: layout(&state, &who, NavSection::Reconcile, flash).await?,
            date: day.to_string(),
            runs: runs.iter().map(run_row).collect(),
            diffs: diffs.iter().map(diff_row).collect(),
            days,
            csv_url: format!("/admin/reconcile.csv?date={day}"),
            providers: state
                .gateway()
                .billed_providers()
                .iter()
                .map(|p| p.to_string())
                .collect(),
        },
    )
}

#[derive(Deserialize)]
struct RunForm {
    #[serde(default)]
    date: String,
}

/// `POST /admin/reconcile/run` (`date`): reconciles the day now, every billed platform.
pub async fn run_day(
    state: web::Data<AppState>,
    who: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: RunForm = csrf_form(&who.session, &body)?;
    let day = day_of(Some(&form.date))?;
    let gateway = state.gateway();
    let holder = format!("admin-{}", who.name);
    for provider in gateway.billed_providers() {
        if let Err(e) = gateway.reconcile(day, provider, &holder).await {
            log::warn!(
                "reconciliation of {provider} {day} by {} failed: {e}",
                who.name
            );
        }
    }
    Ok(see_other(&format!("/admin/reconcile?date={day}&done=run")))
}

#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    date: String,
}

/// `POST /admin/reconcile/diffs/{id}/resolve` (`note`): marks a difference resolved.
pub async fn resolve(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: ResolveForm = csrf_form(&who.session, &body)?;
    let note = form.note.trim().to_string();
    if note.is_empty() || note.chars().count() > 200 {
        return Err(PageError::bad_request("请填写处理说明（最多 200 字）。"));
    }
    let (id, name) = (*path, who.name.clone());
    let at = crate::models::now();
    db(&state, move |c| {
        Ok(recon::resolve(c, id, &name, &note, at)?)
    })
    .await?;
    let day = day_of(Some(&form.date))?;
    Ok(see_other(&format!(
        "/admin/reconcile?date={day}&done=resolved"
    )))
}

/// `GET /admin/reconcile.csv?date=`: the day's differences, UTF-8 with BOM for Excel.
pub async fn csv(
    state: web::Data<AppState>,
    _who: Admin,
    q: web::Query<DayQuery>,
) -> Result<HttpResponse, PageError> {
    let day = day_of(q.date.as_deref())?;
    let key = day.to_string();
    let diffs = db(&state, move |c| Ok(recon::diffs_of(c, &key)?)).await?;
    let mut out = String::from(
        "\u{feff}对账日期,支付机构,差异类型,商户订单号,退款单号,商城,平台,处理,处理记录\r\n",
    );
    for d in diffs.iter().map(diff_row) {
        let action = if d.action == "applied" {
            "已补单"
        } else {
            "待人工处理"
        };
        let fields = [
            csv_field(&day.to_string()),
            csv_field(&d.provider),
            csv_field(&d.kind_label),
            csv_text_id(&d.out_trade_no),
            csv_text_id(&d.out_refund_no),
            csv_field(&d.shop_value),
            csv_field(&d.platform_value),
            csv_field(action),
            csv_field(d.resolved.as_deref().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"reconcile-{day}.csv\""),
        ))
        .body(out))
}
