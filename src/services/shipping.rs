//! WeChat's 发货信息管理: a parcel of an order paid in the mini-program is reported to WeChat
//! (`upload_shipping_info`), which holds the merchant's money for the order until then. The
//! upload follows the admin's 发货 at once and, if WeChat cannot take it yet (the payment
//! not indexed, busy, unreachable), again from the sweep with a backoff; a refusal for good
//! is shown on the admin's order page. The access_token lives in `api_token`, shared by the
//! instances and refreshed by one of them at a time, before it ends.

use super::gateway::Gateway;
use super::{run, ServiceError};
use crate::domain::shanghai;
use crate::models::shipment::{self, Shipment, UploadStatus};
use crate::models::{api_token, now, order, user};
use crate::payment::wechat::shipping::{
    express_company, mask_phone, ApiError, Contact, OrderKey, Parcel, Payer, ShippingInfo,
};

/// A token is refreshed this long before WeChat says it ends.
const REFRESH_AHEAD: chrono::Duration = chrono::Duration::minutes(5);
/// How long one instance may take to refresh before another may try.
const REFRESH_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How long a claimed upload is left to its claimant before the sweep takes it again.
const UPLOAD_LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// The wait before upload try `tries + 1`: 30 s, doubling, at most an hour.
pub fn upload_retry_after(tries: i32) -> chrono::Duration {
    let secs = 30i64 << tries.clamp(0, 7);
    chrono::Duration::seconds(secs.min(3600))
}

/// What an upload needs from the database.
struct Upload {
    shipment: Shipment,
    info: Option<ShippingInfo>,
    /// Why there is nothing WeChat could take (no transaction id, no openid, an unknown
    /// carrier): refused without a call.
    unfit: Option<String>,
}

fn upload_of(c: &mut crate::db::Conn, s: Shipment) -> Result<Upload, ServiceError> {
    let o = order::find(c, s.order_id)?.ok_or(ServiceError::OrderNotFound)?;
    let openid = user::find(c, o.user_id)?.and_then(|u| u.openid);
    let phone = super::order::snap_address(&o)
        .map(|a| a.mobile)
        .unwrap_or_default();
    let unfit = if o.transaction_no.as_deref().unwrap_or("").is_empty() {
        Some("订单没有微信支付单号")
    } else if openid.is_none() {
        Some("买家没有小程序 openid")
    } else if express_company(&s.carrier).is_none() {
        Some("快递公司不在微信的物流公司列表中")
    } else {
        None
    };
    if let Some(why) = unfit {
        return Ok(Upload {
            shipment: s,
            info: None,
            unfit: Some(why.into()),
        });
    }
    let upload_time = now()
        .and_utc()
        .with_timezone(&shanghai())
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    let info = ShippingInfo {
        order_key: OrderKey {
            order_number_type: 2,
            transaction_id: o.transaction_no.clone().unwrap_or_default(),
        },
        logistics_type: 1,
        delivery_mode: 1,
        shipping_list: vec![Parcel {
            tracking_no: s.tracking_no.clone(),
            express_company: express_company(&s.carrier).unwrap_or_default().into(),
            item_desc: o.snap_name.chars().take(120).collect(),
            contact: Contact {
                receiver_contact: mask_phone(&phone),
            },
        }],
        upload_time,
        payer: Payer {
            openid: openid.unwrap_or_default(),
        },
    };
    Ok(Upload {
        shipment: s,
        info: Some(info),
        unfit: None,
    })
}

/// Why a parcel was not reported.
#[derive(Debug, thiserror::Error)]
enum Unsent {
    /// Nothing WeChat could take: refused without a call.
    #[error("{0}")]
    Unfit(String),
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl Gateway {
    fn token_name(&self) -> String {
        format!("wechat:{}", self.mini.appid)
    }

    /// The mini-program's access_token: the stored one while it has more than five minutes
    /// left (or `stale` is not it), else a fresh one. One instance refreshes at a time; the
    /// others wait for it (up to a few seconds), then use what it stored.
    pub async fn access_token(&self, stale: Option<&str>) -> Result<String, ServiceError> {
        let name = self.token_name();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let n = name.clone();
            let current = run(&self.db, move |c| Ok(api_token::find(c, &n)?)).await?;
            let t = now();
            if let Some(tok) = &current {
                let fresh = tok.expires_at - REFRESH_AHEAD > t && !tok.token.is_empty();
                if fresh && stale != Some(tok.token.as_str()) {
                    return Ok(tok.token.clone());
                }
            }
            let n = name.clone();
            let claimed = run(&self.db, move |c| {
                Ok(api_token::claim_refresh(c, &n, t, t + REFRESH_LEASE)?)
            })
            .await?;
            if claimed {
                // A token WeChat called invalid is replaced, not fetched again.
                let answer = self.mini.stable_token(stale.is_some()).await;
                let n = name.clone();
                return match answer {
                    Ok(tok) => {
                        // WeChat says 7200; anything else is kept within sane bounds.
                        let life = tok.expires_in.clamp(60, 7200);
                        let until = now() + chrono::Duration::seconds(life);
                        let text = tok.access_token.clone();
                        run(&self.db, move |c| {
                            Ok(api_token::store(c, &n, &text, until, now())?)
                        })
                        .await?;
                        Ok(tok.access_token)
                    }
                    Err(e) => {
                        run(&self.db, move |c| Ok(api_token::release(c, &n)?)).await?;
                        Err(ServiceError::Gateway(format!("stable_token: {e}")))
                    }
                };
            }
            if std::time::Instant::now() >= deadline {
                return Err(ServiceError::Gateway(
                    "another instance is still refreshing the access_token".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Uploads the order's parcel to WeChat if it is due; what came of it (None: nothing
    /// due, or another instance has it).
    pub async fn upload_shipping(
        &self,
        order_id: i32,
    ) -> Result<Option<UploadStatus>, ServiceError> {
        let s = run(&self.db, move |c| Ok(shipment::of_order(c, order_id)?)).await?;
        match s {
            Some(s) if s.upload_status == UploadStatus::Pending.code() => self.upload(s).await,
            _ => Ok(None),
        }
    }

    async fn upload(&self, s: Shipment) -> Result<Option<UploadStatus>, ServiceError> {
        let (id, t) = (s.id, now());
        let claimed = run(&self.db, move |c| {
            Ok(shipment::claim_upload(c, id, t, t + UPLOAD_LEASE)?)
        })
        .await?;
        if !claimed {
            return Ok(None);
        }
        let up = run(&self.db, move |c| upload_of(c, s.clone())).await?;
        let tries = up.shipment.upload_tries;
        let outcome = match (&up.info, up.unfit) {
            (Some(info), None) => self.send(info).await,
            (_, why) => Err(Unsent::Unfit(why.unwrap_or_default())),
        };
        let (status, error, next) = match &outcome {
            Ok(()) => (UploadStatus::Uploaded, None, None),
            Err(Unsent::Api(e)) if e.retryable() => (
                UploadStatus::Pending,
                Some(e.to_string()),
                Some(now() + upload_retry_after(tries)),
            ),
            Err(e) => (UploadStatus::Refused, Some(e.to_string()), None),
        };
        if let Err(e) = &outcome {
            log::warn!(
                "shipping upload of order {} failed: {e}",
                up.shipment.order_id
            );
        }
        run(&self.db, move |c| {
            Ok(shipment::record_upload(
                c,
                id,
                status,
                error.as_deref(),
                next,
            )?)
        })
        .await?;
        Ok(Some(status))
    }

    /// One upload with the current token; a token WeChat calls dead is replaced once.
    async fn send(&self, info: &ShippingInfo) -> Result<(), Unsent> {
        let token = self
            .access_token(None)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let sent = match self.mini.upload_shipping_info(&token, info).await {
            Err(e) if e.token_invalid() => {
                let fresh = self
                    .access_token(Some(&token))
                    .await
                    .map_err(|e| ApiError::Transport(e.to_string()))?;
                self.mini.upload_shipping_info(&fresh, info).await
            }
            other => other,
        };
        Ok(sent?)
    }

    /// The shipping sweep: uploads every parcel that is due. How many were uploaded.
    pub async fn sweep_shipping(&self) -> Result<usize, ServiceError> {
        let due = run(&self.db, |c| Ok(shipment::due_uploads(c, now(), 100)?)).await?;
        let mut uploaded = 0;
        for s in due {
            let order_id = s.order_id;
            match self.upload(s).await {
                Ok(Some(UploadStatus::Uploaded)) => uploaded += 1,
                Ok(_) => {}
                Err(e) => log::warn!("shipping upload of order {order_id} failed: {e}"),
            }
        }
        Ok(uploaded)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uploads_back_off_to_an_hour() {
        assert_eq!(super::upload_retry_after(0).num_seconds(), 30);
        assert_eq!(super::upload_retry_after(1).num_seconds(), 60);
        assert_eq!(super::upload_retry_after(30).num_seconds(), 3600);
    }
}
