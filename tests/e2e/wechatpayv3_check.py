"""The wechatpayv3 SDK (minibear2021) against the jiesuan sandbox's WeChat Pay APIv3.

The SDK has no base-URL parameter: `Core.__init__` assigns `self._gate_way =
'https://api.mch.weixin.qq.com'` and, in platform-certificate mode, downloads
/v3/certificates at once. The narrowest override is that one attribute: a class-level
property makes the constructor's assignment a no-op and sends every request, the first
included, to the sandbox. Signing, verification, certificate download and decryption are the
SDK's own.

In one mode (public-key or platform-certificate) the script: creates a JSAPI and a NATIVE
payment (the SDK verifies each answer's signature, raising if it fails), queries and closes
one, has the sandbox pay the JSAPI one and lets the SDK's `callback` verify and decrypt the
notification, checks that a request signed with another key gets 401 SIGN_ERROR and a
time_expire under 5 minutes 400 PARAM_ERROR; in certificate mode it also rotates the
platform certificate and the SDK fetches the new one by itself.

Usage: python3 wechatpayv3_check.py CONFIG_JSON
CONFIG_JSON: {"base": ".../sandbox/wxpay", "control": ".../sandbox/control",
              "jscode2session": ".../sandbox/wxapi/sns/jscode2session", "appid", "app_secret",
              "mchid", "cert_serial", "apiv3_key", "private_key" (path),
              "public_key" (path or null), "public_key_id" (or null), "prefix"}
"""
import http.server
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3 import core as wxcore

cfg = json.loads(sys.argv[1])
wxcore.Core._gate_way = property(lambda self: cfg["base"], lambda self, value: None)

notifications = []


class Notify(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        result = pay.callback(self.headers, body)
        notifications.append(result)
        self.send_response(200 if result else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Notify)
threading.Thread(target=server.serve_forever, daemon=True).start()
notify_url = "http://127.0.0.1:%d/notify" % server.server_address[1]

with open(cfg["private_key"]) as f:
    private_key = f.read()
public_key = None
if cfg.get("public_key"):
    with open(cfg["public_key"]) as f:
        public_key = f.read()

pay = WeChatPay(
    wechatpay_type=WeChatPayType.NATIVE,
    mchid=cfg["mchid"],
    private_key=private_key,
    cert_serial_no=cfg["cert_serial"],
    appid=cfg["appid"],
    apiv3_key=cfg["apiv3_key"],
    notify_url=notify_url,
    public_key=public_key,
    public_key_id=cfg.get("public_key_id"),
    timeout=(5, 10),
)
mode = "public_key" if public_key else "certificate"
prefix = cfg["prefix"]
out = {"mode": mode}

# The payer's openid, from the sandbox's mini-program login.
code = requests.post(cfg["control"] + "/wx_login", json={"user": "sdk-v3"}, timeout=10).json()["code"]
openid = requests.get(cfg["jscode2session"], params={
    "appid": cfg["appid"], "secret": cfg["app_secret"], "js_code": code,
    "grant_type": "authorization_code"}, timeout=10).json()["openid"]

jsapi_no, native_no = prefix + "J1", prefix + "N1"
code, message = pay.pay(description="wechatpayv3 JSAPI", out_trade_no=jsapi_no,
                        amount={"total": 1, "currency": "CNY"}, payer={"openid": openid},
                        pay_type=WeChatPayType.JSAPI, attach="sdk")
assert code == 200, (code, message)
out["prepay_id"] = json.loads(message)["prepay_id"]
code, message = pay.pay(description="wechatpayv3 NATIVE", out_trade_no=native_no,
                        amount={"total": 2})
assert code == 200, (code, message)
out["code_url"] = json.loads(message)["code_url"]

code, message = pay.query(out_trade_no=native_no)
assert code == 200, (code, message)
out["queried"] = json.loads(message)["trade_state"]
code, message = pay.close(out_trade_no=native_no)
assert code == 204, (code, message)
out["closed"] = json.loads(pay.query(out_trade_no=native_no)[1])["trade_state"]

# The sandbox's phone pays the JSAPI order; the SDK verifies and decrypts the notification.
paid = requests.post(cfg["control"] + "/pay", json={"out_trade_no": jsapi_no}, timeout=10)
assert paid.status_code == 200, paid.text
for _ in range(100):
    if notifications:
        break
    time.sleep(0.05)
assert notifications and notifications[0], notifications
resource = notifications[0]["resource"]
out["notified"] = [notifications[0]["event_type"], resource["trade_state"],
                   resource["out_trade_no"], resource["amount"]["total"]]

too_soon = (datetime.now(timezone(timedelta(hours=8))) + timedelta(minutes=4)).strftime(
    "%Y-%m-%dT%H:%M:%S+08:00")
code, message = pay.pay(description="too soon", out_trade_no=prefix + "T1",
                        amount={"total": 1}, time_expire=too_soon)
out["short_time_expire"] = [code, json.loads(message)["code"]]

if mode == "certificate":
    # A new platform certificate: the next answer is signed by it, and the SDK, not knowing
    # the serial, downloads the certificates again and accepts the answer.
    rotated = requests.post(cfg["control"] + "/rotate_cert", json={}, timeout=10).json()
    code, message = pay.query(out_trade_no=jsapi_no)
    assert code == 200, (code, message)
    out["rotated"] = rotated["current"] in [
        format(c.serial_number, "X") for c in pay._core._certificates]

# The same SDK signing with a key the platform does not know.
pay._core._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
code, message = pay.query(out_trade_no=jsapi_no)
out["wrong_key"] = [code, json.loads(message)["code"]]

server.shutdown()
print(json.dumps(out))
