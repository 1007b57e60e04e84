"""Keep the KubeRay RayService's `serveConfigV2` equal to deployments/serve_config.yaml.

`python -m echo_ray.ops.manifests` rewrites the `serveConfigV2: |` block of
deployments/kuberay/rayservice.yaml with the Serve config, verbatim, and leaves every other
line of the manifest as it is (comments included).
"""

from __future__ import annotations

import sys
from pathlib import Path

KEY = "serveConfigV2: |"


def embed_serve_config(manifest: str, serve_config: str) -> str:
    """`manifest` with the block under `serveConfigV2: |` replaced by `serve_config`."""
    lines = manifest.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == KEY]
    if len(starts) != 1:
        raise ValueError(f"manifest must contain exactly one line `{KEY}`, found {len(starts)}")
    start = starts[0]
    key_indent = len(lines[start]) - len(lines[start].lstrip())
    indent = " " * (key_indent + 2)
    end = start + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) > key_indent):
        end += 1
    block = [(indent + line) if line.strip() else "\n"
             for line in serve_config.splitlines(keepends=True)]
    if block and not block[-1].endswith("\n"):
        block[-1] += "\n"
    return "".join(lines[:start + 1] + block + lines[end:])


def main(root: str | Path = ".") -> int:
    root = Path(root)
    serve = (root / "deployments" / "serve_config.yaml").read_text()
    target = root / "deployments" / "kuberay" / "rayservice.yaml"
    old = target.read_text()
    new = embed_serve_config(old, serve)
    if new != old:
        target.write_text(new)
        print(f"updated serveConfigV2 in {target}")
    else:
        print(f"{target} already in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
