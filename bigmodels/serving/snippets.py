"""Copy-paste examples for calling the service, filled with its URL and a model id.

The Python example uses only the standard library, so it runs wherever Python
does; tests/test_service.py runs it against the live service.
"""
from __future__ import annotations

from bigmodels.base.i18n import DEFAULT_LANGUAGE, translate
from bigmodels.serving.settings import API_PREFIX

KEY_PLACEHOLDER = "$BIGMODELS_API_KEY"


def _comment(key: str, lang: str) -> str:
    """A snippet's comment in the reader's language (the code stays code)."""
    return translate(f"service.snippet.{key}", lang)


def curl_snippet(base_url: str, model_id: str, lang: str = DEFAULT_LANGUAGE) -> str:
    endpoint = f"{base_url.rstrip('/')}{API_PREFIX}/models/{model_id}/predict"
    return (f"# {_comment('image', lang)}\n"
            f"curl -s -X POST {endpoint} \\\n"
            f"  -H \"Authorization: Bearer {KEY_PLACEHOLDER}\" \\\n"
            f"  -H \"Content-Type: image/png\" --data-binary @digit.png\n\n"
            f"# {_comment('models', lang)}\n"
            f"curl -s {base_url.rstrip('/')}{API_PREFIX}/models -H \"Authorization: Bearer {KEY_PLACEHOLDER}\"")


def python_snippet(base_url: str, model_id: str, lang: str = DEFAULT_LANGUAGE) -> str:
    endpoint = f"{base_url.rstrip('/')}{API_PREFIX}/models/{model_id}/predict"
    return f'''import json, os, urllib.request

KEY = os.environ["BIGMODELS_API_KEY"]
ENDPOINT = "{endpoint}"

# {_comment('pixels', lang)}
digit = [[0.0] * 28 for _ in range(28)]
for row in range(5, 23):
    digit[row][13] = digit[row][14] = 1.0  # {_comment('one', lang)}

request = urllib.request.Request(
    ENDPOINT, data=json.dumps({{"pixels": digit}}).encode(), method="POST",
    headers={{"Authorization": f"Bearer {{KEY}}", "Content-Type": "application/json"}})
with urllib.request.urlopen(request, timeout=30) as response:
    for p in json.load(response)["predictions"]:
        print(p["label"], max(p["probabilities"]), p["latency_ms"], "ms")
'''
