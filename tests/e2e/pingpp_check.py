"""The official Ping++ Python SDK against the jiesuan sandbox, pointed at it by api_base only:
creates a charge and retrieves it.

Usage: python3 pingpp_check.py CONFIG_JSON
CONFIG_JSON: {"api_base": ".../sandbox/pingpp", "secret_key", "app_id"}
"""
import json
import sys
import time

import pingpp

cfg = json.loads(sys.argv[1])
pingpp.api_key = cfg["secret_key"]
pingpp.api_base = cfg["api_base"]

order_no = "SDK%d" % int(time.time() * 1000)
ch = pingpp.Charge.create(
    order_no=order_no,
    app=dict(id=cfg["app_id"]),
    channel="alipay_qr",
    amount=100,
    client_ip="127.0.0.1",
    currency="cny",
    subject="SDK check",
    body="Ping++ Python SDK against the sandbox",
)
assert ch.id.startswith("ch_") and len(ch.id) == 27, ch.id
assert ch.paid is False and ch.amount == 100
assert ch.credential["alipay_qr"].startswith("http"), ch.credential
again = pingpp.Charge.retrieve(ch.id)
assert again.id == ch.id and again.order_no == order_no
print(json.dumps({"created": ch.id, "retrieved": again.id}))
