"""The official openai client against kefu, plain and streamed. Usage: openai_client.py BASE_URL KEY"""
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=120)

plain = client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "How do I get a refund?"}],
    max_tokens=32,
)
assert plain.choices[0].message.content, plain
assert plain.usage.total_tokens > 0, plain

pieces = []
last = None
for chunk in client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "How do I share a folder?"}],
    max_tokens=32,
    stream=True,
):
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
        last = chunk
assert "".join(pieces), "streamed no text"
assert last.choices[0].finish_reason in ("stop", "length"), last

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("unknown model was accepted")
except Exception as e:  # openai.NotFoundError
    assert getattr(e, "status_code", None) == 404, e
print("openai client: plain, streamed and error handling ok")
