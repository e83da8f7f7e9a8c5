"""Against a running image: healthy, MNIST and the default model inside, a token required (the image binds
0.0.0.0) and accepted, and a digit predicted. The token comes from NNPLAY_TOKEN, as given to the image."""

import json
import os
import sys
import urllib.error
import urllib.request

base = sys.argv[1].rstrip("/")
token = os.environ["NNPLAY_TOKEN"]
bearer = {"authorization": f"Bearer {token}"}


def status_of(request: urllib.request.Request) -> int:
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


health = json.load(urllib.request.urlopen(urllib.request.Request(f"{base}/api/health", headers=bearer), timeout=10))
print("health:", health)
assert health["mnist"] == "ready" and health["default_model"] == "ready", health
assert status_of(urllib.request.Request(f"{base}/api/models")) == 401, "a 0.0.0.0 bind must require the token"
pixels = [[1.0 if 6 <= r <= 21 and 13 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]  # a "1"
req = urllib.request.Request(
    f"{base}/api/predict",
    data=json.dumps({"pixels": pixels}).encode(),
    headers={"content-type": "application/json", **bearer},
)
answer = json.load(urllib.request.urlopen(req, timeout=10))
print("predict:", {k: answer[k] for k in ("digit", "probabilities", "model")})
assert answer["digit"] == 1, answer
