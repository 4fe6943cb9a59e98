"""python-alipay-sdk (fzlee/alipay, PyPI) against the jiesuan sandbox's Alipay gateway.

The SDK takes no gateway URL: `BaseAliPay.__init__` sets the instance attribute `_gateway`
to openapi.alipay.com (or the Alipay sandbox with debug=True) and every server call goes to
`self._gateway + "?" + signed query`. The narrowest override is that one attribute, set on
the instance after construction. Signing, the GET transport, answer verification (brace
matching over the raw text) and notification verification are the SDK's own.

The SDK writes `timestamp` in the host's local time while Alipay reads Beijing time: run it
with TZ=Asia/Shanghai (the Rust test does), as a merchant's server in China is.

The script: precreate (the SDK verifies the answer), query before the scan
(ACQ.TRADE_NOT_EXIST) and after it (WAIT_BUYER_PAY), the sandbox pays, the SDK's `verify`
accepts the notification and refuses it with one field changed, query (TRADE_SUCCESS), a
partial refund and its query, a wap.pay URL the gateway sends on to the cashier, and a call
signed by another key answered isv.invalid-signature (still signed by the platform). With
"certs" (certificate mode) it uses DCAliPay instead: precreate and query, the SDK's own
app_cert_sn / alipay_root_cert_sn accepted and the answers verified with the key in
alipay_cert.

Usage: python3 alipay_check.py CONFIG_JSON
CONFIG_JSON: {"gateway": ".../sandbox/alipay/gateway.do", "control": ".../sandbox/control",
              "app_id", "app_private_key" (path), "alipay_public_key" (path), "prefix",
              "certs" (optional: {"app_cert", "alipay_cert", "alipay_root_cert"} paths)}
"""
import http.server
import json
import sys
import threading
import time
from urllib.parse import parse_qsl

import requests
from alipay import AliPay, DCAliPay
from Cryptodome.PublicKey import RSA

cfg = json.loads(sys.argv[1])
notifications = []


class Notify(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        notifications.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Notify)
threading.Thread(target=server.serve_forever, daemon=True).start()
notify_url = "http://127.0.0.1:%d/notify/alipay" % server.server_port


def client(private_key):
    sdk = AliPay(
        appid=cfg["app_id"],
        app_notify_url=notify_url,
        app_private_key_string=private_key,
        alipay_public_key_string=open(cfg["alipay_public_key"]).read(),
        sign_type="RSA2",
    )
    sdk._gateway = cfg["gateway"]
    return sdk


no = cfg["prefix"] + "Q1"
out = {}

if cfg.get("certs"):
    # Certificate mode: DCAliPay computes app_cert_sn and alipay_root_cert_sn itself from
    # the certificates and takes Alipay's key out of alipay_cert.
    certs = {k: open(v).read() for k, v in cfg["certs"].items()}
    sdk = DCAliPay(
        appid=cfg["app_id"],
        app_notify_url=notify_url,
        app_private_key_string=open(cfg["app_private_key"]).read(),
        app_public_key_cert_string=certs["app_cert"],
        alipay_public_key_cert_string=certs["alipay_cert"],
        alipay_root_cert_string=certs["alipay_root_cert"],
    )
    sdk._gateway = cfg["gateway"]
    created = sdk.api_alipay_trade_precreate(
        subject="证书模式", out_trade_no=no, total_amount="0.01"
    )
    out["sns"] = [sdk.app_cert_sn, sdk.alipay_root_cert_sn]
    out["precreate"] = [created["code"], created["out_trade_no"]]
    out["before_scan"] = sdk.api_alipay_trade_query(out_trade_no=no).get("sub_code")
    print(json.dumps(out, ensure_ascii=False))
    sys.exit(0)

alipay = client(open(cfg["app_private_key"]).read())

created = alipay.api_alipay_trade_precreate(
    subject="结算商城订单", out_trade_no=no, total_amount="0.01"
)
out["precreate"] = [created["code"], created["out_trade_no"]]
qr = created["qr_code"]
out["before_scan"] = alipay.api_alipay_trade_query(out_trade_no=no).get("sub_code")
requests.get(qr).raise_for_status()
out["after_scan"] = alipay.api_alipay_trade_query(out_trade_no=no)["trade_status"]

requests.post(cfg["control"] + "/pay", json={"out_trade_no": no}).raise_for_status()
for _ in range(200):
    if notifications:
        break
    time.sleep(0.05)
data = dict(parse_qsl(notifications[0], keep_blank_values=True))
signature = data.pop("sign")
changed = dict(data, total_amount="100.00")
out["notify"] = [
    alipay.verify(dict(data), signature),
    alipay.verify(changed, signature),
    data["trade_status"],
    data["out_trade_no"],
]
out["paid"] = alipay.api_alipay_trade_query(out_trade_no=no)["trade_status"]

refund = alipay.api_alipay_trade_refund(
    refund_amount="0.01", out_trade_no=no, out_request_no=no + "R1"
)
out["refund"] = [refund["fund_change"], refund["refund_fee"]]
refunded = alipay.api_alipay_trade_fastpay_refund_query(no + "R1", out_trade_no=no)
out["refund_query"] = refunded["refund_status"]

wap = alipay.api_alipay_trade_wap_pay(
    subject="手机网站支付",
    out_trade_no=cfg["prefix"] + "W1",
    total_amount="1.00",
    return_url="https://shop.example.com/return",
)
res = requests.get(cfg["gateway"] + "?" + wap, allow_redirects=False)
out["wap"] = [res.status_code, "/sandbox/alipay/cashier/" in res.headers.get("location", "")]

other = RSA.generate(2048).export_key().decode()
refused = client(other).api_alipay_trade_query(out_trade_no=no)
out["wrong_key"] = [refused["code"], refused["sub_code"]]

print(json.dumps(out, ensure_ascii=False))
