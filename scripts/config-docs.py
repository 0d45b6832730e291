"""Rewrite the key table at the end of docs/configuration.md from KEYS (run after adding a
key): .venv/bin/python scripts/config-docs.py"""

from pathlib import Path

from daemon.config import reference_markdown

doc = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
text = doc.read_text()
start = text.index("| key | environment variable |")
end = text.find("\n\n", start)
tail = "" if end == -1 else text[end:]
doc.write_text(text[:start] + reference_markdown().rstrip("\n") + (tail or "\n"))
print(f"{doc}: {len(reference_markdown().splitlines()) - 2} keys")
