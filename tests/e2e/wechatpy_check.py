"""The wechatpy SDK against the jiesuan sandbox and shop.

Points wechatpy's WeChatPay at the sandbox by its base URL only, calls unifiedorder and
orderquery (wechatpy verifies the answers' signatures itself), then signs a payment
notification with wechatpy's own signing function and posts it to the shop.

Usage: python3 wechatpy_check.py CONFIG_JSON
CONFIG_JSON: {"sandbox": ".../sandbox/wxpay/", "appid", "mch_id", "api_key",
              "notify_url", "out_trade_no", "total_fee"}
"""
import json
import sys
import time

import requests
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, dict_to_xml
from wechatpy.utils import random_string

cfg = json.loads(sys.argv[1])
pay = WeChatPay(cfg["appid"], cfg["api_key"], cfg["mch_id"])
pay.API_BASE_URL = cfg["sandbox"]

own_trade = "SDK%d" % int(time.time() * 1000)
created = pay.order.create(
    trade_type="NATIVE",
    body="wechatpy check",
    total_fee=1,
    notify_url=cfg["notify_url"],
    product_id="1",
    out_trade_no=own_trade,
    # IPv4 text, as the live gateway demands (wechatpy would otherwise look up its own).
    client_ip="127.0.0.1",
)
assert created["return_code"] == "SUCCESS" and created["result_code"] == "SUCCESS", created
assert created["code_url"].startswith("weixin://wxpay/bizpayurl?pr="), created
queried = pay.order.query(out_trade_no=own_trade)
assert queried["trade_state"] == "NOTPAY", queried

# A notification for the shop's own attempt, signed by wechatpy.
params = {
    "return_code": "SUCCESS",
    "result_code": "SUCCESS",
    "appid": cfg["appid"],
    "mch_id": cfg["mch_id"],
    "nonce_str": random_string(32),
    "openid": "oSbxWechatpy",
    "trade_type": "NATIVE",
    "bank_type": "CFT",
    "total_fee": str(cfg["total_fee"]),
    "cash_fee": str(cfg["total_fee"]),
    "fee_type": "CNY",
    "transaction_id": "4200000000%s" % time.strftime("%Y%m%d%H%M%S"),
    "out_trade_no": cfg["out_trade_no"],
    "time_end": time.strftime("%Y%m%d%H%M%S"),
}
sign = calculate_signature(params, cfg["api_key"])
reply = requests.post(cfg["notify_url"], data=dict_to_xml(params, sign).encode("utf-8"),
                      headers={"Content-Type": "text/xml"}, timeout=10)
assert reply.status_code == 200, reply.status_code
assert "<return_code><![CDATA[SUCCESS]]></return_code>" in reply.text, reply.text
print(json.dumps({"unifiedorder": created["prepay_id"], "orderquery": queried["trade_state"], "notify": "SUCCESS"}))
