//! Ping++ objects on the wire: Charge, Event, the create request, errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Charge, in the field order of Ping++'s responses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Charge {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub livemode: bool,
    pub paid: bool,
    pub refunded: bool,
    #[serde(default)]
    pub reversed: bool,
    pub app: String,
    pub channel: String,
    pub order_no: String,
    pub client_ip: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_settle: i64,
    pub currency: String,
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub extra: Value,
    pub time_paid: Option<i64>,
    pub time_expire: Option<i64>,
    pub time_settle: Option<i64>,
    pub transaction_no: Option<String>,
    #[serde(default)]
    pub refunds: Value,
    #[serde(default)]
    pub amount_refunded: i64,
    pub failure_code: Option<String>,
    pub failure_msg: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub credential: Value,
    pub description: Option<String>,
}

/// `POST /v1/charges`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateCharge {
    pub order_no: String,
    pub app: AppRef,
    pub channel: String,
    pub amount: i64,
    pub client_ip: String,
    pub currency: String,
    pub subject: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub extra: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRef {
    pub id: String,
}

/// A webhook Event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub created: i64,
    pub livemode: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
    pub object: String,
    #[serde(default)]
    pub pending_webhooks: i64,
    #[serde(default)]
    pub request: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// `{"error":{type,message,code,param}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ApiErrorBody,
}

/// A Refund of a charge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Refund {
    pub id: String,
    pub object: String,
    pub order_no: String,
    pub amount: i64,
    pub created: i64,
    pub succeed: bool,
    pub status: String,
    pub time_succeed: Option<i64>,
    pub description: String,
    pub failure_code: Option<String>,
    pub failure_msg: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    pub charge: String,
    pub charge_order_no: String,
    pub transaction_no: Option<String>,
    #[serde(default)]
    pub extra: Value,
    #[serde(default)]
    pub funding_source: Option<String>,
}

/// `POST /v1/charges/{id}/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRefund {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}
