#!/usr/bin/env python3
"""An Open Inference Protocol client with nothing but Python's standard
library: the protocol as a client that is not ergonx's sees it.

Reads {"url": BASE, "model": NAME, "images": [[64 floats], ...]} on
stdin, checks the health and metadata routes, infers the images in JSON
(nested lists) and with the binary tensor data extension, sends a
datatype the server does not support, and prints what it got as JSON.
"""
import json
import struct
import sys
import urllib.error
import urllib.request


def call(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main():
    args = json.load(sys.stdin)
    base, model, images = args["url"], args["model"], args["images"]
    out = {}

    status, _, body = call("GET", base + "/v2/health/live")
    out["live"] = [status, json.loads(body)]
    status, _, body = call("GET", base + "/v2/health/ready")
    out["ready"] = [status, json.loads(body)]
    status, _, body = call("GET", base + "/v2")
    out["server"] = json.loads(body)
    status, _, body = call("GET", base + "/v2/models/" + model)
    meta = json.loads(body)
    out["metadata"] = meta
    in_name = meta["inputs"][0]["name"]
    out_name = meta["outputs"][0]["name"]
    n = len(images)

    # JSON, the data as nested lists, as numpy's tolist() gives them.
    req = {"id": "py-1", "inputs": [{"name": in_name, "shape": [n, 64], "datatype": "FP32", "data": images}],
           "outputs": [{"name": out_name}]}
    status, headers, body = call("POST", base + "/v2/models/" + model + "/infer",
                                 json.dumps(req).encode(), {"Content-Type": "application/json"})
    resp = json.loads(body)
    out["json"] = {"status": status, "id": resp["id"], "shape": resp["outputs"][0]["shape"],
                   "datatype": resp["outputs"][0]["datatype"], "logits": resp["outputs"][0]["data"]}

    # The binary tensor data extension, both ways.
    raw = b"".join(struct.pack("<64f", *img) for img in images)
    header = json.dumps({"inputs": [{"name": in_name, "shape": [n, 64], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": out_name, "parameters": {"binary_data": True}}]}).encode()
    status, headers, body = call("POST", base + "/v2/models/" + model + "/infer", header + raw,
                                 {"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(len(header))})
    hlen = int(headers["Inference-Header-Content-Length"])
    resp = json.loads(body[:hlen])
    size = resp["outputs"][0]["parameters"]["binary_data_size"]
    data = body[hlen:hlen + size]
    out["binary"] = {"status": status, "content_type": headers["Content-Type"], "shape": resp["outputs"][0]["shape"],
                     "logits": list(struct.unpack("<%df" % (size // 4), data))}

    # A datatype the server refuses: a 400 with the protocol's error object.
    req = {"inputs": [{"name": in_name, "shape": [1, 64], "datatype": "FP16", "data": [0] * 64}]}
    status, _, body = call("POST", base + "/v2/models/" + model + "/infer", json.dumps(req).encode(),
                           {"Content-Type": "application/json"})
    out["fp16"] = [status, json.loads(body)]

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
