"""Against a running image: healthy, MNIST and the default model inside, and a digit predicted."""

import json
import sys
import urllib.request

base = sys.argv[1].rstrip("/")
health = json.load(urllib.request.urlopen(f"{base}/api/health", timeout=10))
print("health:", health)
assert health["mnist"] == "ready" and health["default_model"] == "ready", health
pixels = [[1.0 if 6 <= r <= 21 and 13 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]  # a "1"
req = urllib.request.Request(
    f"{base}/api/predict",
    data=json.dumps({"pixels": pixels}).encode(),
    headers={"content-type": "application/json"},
)
answer = json.load(urllib.request.urlopen(req, timeout=10))
print("predict:", {k: answer[k] for k in ("digit", "probabilities", "model")})
assert answer["digit"] == 1, answer
