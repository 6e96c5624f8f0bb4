#!/usr/bin/env python3
"""Puts the page's Content-Security-Policy into the built index.html as a <meta> tag.

Trunk.toml's `[serve] csp` is the one source of the policy: `trunk serve` (and the end-to-end
test's server) send it as a header, with a fresh nonce per request in place of `{{NONCE}}`. A
static host of dist/ sends no header and no nonce, so this step (a trunk post_build hook, see
Trunk.toml) writes the same directives into the staged index.html as

    <meta http-equiv="Content-Security-Policy" content="...">

with every `'nonce-{{NONCE}}'` replaced by the `'sha256-...'` hashes of the page's inline scripts
(script-src) or inline styles (style-src), computed on their text exactly as the browser parses it.
The nonce attributes trunk writes (`nonce="{{__TRUNK NONCE__}}"`) stay: a meta policy without nonce
sources ignores them, and under a server that fills them in both policies (header by nonce, meta
by hash) allow the same scripts. `frame-ancestors`, `report-uri`, `report-to` and `sandbox` are
ignored in a meta policy, so they are left out of it (only the header has them).

An inline script whose text `trunk serve` rewrites per request (its autoreload script, present
unless `--no-autoreload`) cannot be hashed in advance: such a page gets no meta policy (trunk
serve sends the header) and this step says so.

Usage: python3 scripts/csp_meta.py [--config Trunk.toml] [INDEX_HTML]
(INDEX_HTML defaults to $TRUNK_STAGING_DIR/index.html, as trunk's hooks see it).
"""

import argparse
import base64
import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path

NONCE_SOURCE = "'nonce-{{NONCE}}'"
# Not honoured in a <meta> policy (CSP3, section 3.3); the header keeps them.
META_IGNORED = {"frame-ancestors", "report-uri", "report-to", "sandbox"}
# Placeholders `trunk serve` replaces in the page's text per request (its autoreload script).
SERVE_PLACEHOLDERS = ("{{__TRUNK_ADDRESS__}}", "{{__TRUNK_WS_BASE__}}")
# Directives whose nonce stands for inline scripts, for inline styles, or (default-src) both.
SCRIPT_DIRECTIVES = {"script-src", "script-src-elem", "default-src"}
STYLE_DIRECTIVES = {"style-src", "style-src-elem", "default-src"}

ELEMENTS = re.compile(
    r"<!--.*?-->|<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.S | re.I
)
META_CSP = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?content-security-policy", re.I)


def fail(message):
    sys.exit(f"csp_meta: {message}")


def source_hash(text):
    """'sha256-…' of an inline element's text as the browser hashes it: the HTML parser turns
    CR LF and lone CR into LF before anything else, and the hash is over the UTF-8 bytes."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def inline_hashes(html):
    """Hashes of the inline scripts and inline styles, in document order, and whether a script
    holds text `trunk serve` rewrites."""
    scripts, styles, rewritten = [], [], False
    for m in ELEMENTS.finditer(html):
        tag, attrs, text = m.group(1), m.group(2), m.group(3)
        if tag is None:  # a comment
            continue
        if tag.lower() == "script":
            if re.search(r"\bsrc\s*=", attrs, re.I):
                if text.strip():
                    fail("a <script src> with text in it: the text is never run, remove it")
                continue
            rewritten |= any(p in text for p in SERVE_PLACEHOLDERS)
            scripts.append(source_hash(text))
        else:
            styles.append(source_hash(text))
    return scripts, styles, rewritten


def meta_policy(csp, scripts, styles):
    """The directives of `csp` for a meta tag, and the names of those left out."""
    directives, dropped = [], []
    for directive in csp:
        tokens = directive.split()
        if not tokens:
            continue
        name = tokens[0].lower()
        if name in META_IGNORED:
            dropped.append(name)
            continue
        out = [tokens[0]]
        for token in tokens[1:]:
            if token == NONCE_SOURCE:
                if name in SCRIPT_DIRECTIVES:
                    out += [h for h in scripts if h not in out]
                if name in STYLE_DIRECTIVES:
                    out += [h for h in styles if h not in out]
            elif "{{" in token:
                fail(f"unknown placeholder {token} in Trunk.toml's csp ({directive!r})")
            else:
                out.append(token)
        directives.append(" ".join(out))
    return "; ".join(directives), dropped


def insert_meta(html, policy):
    """`html` with the meta tag as early as possible in <head>: right after <meta charset> if
    there is one, else right after <head>. A meta policy only governs what comes after it."""
    if META_CSP.search(html):
        fail("the page already has a Content-Security-Policy meta tag: Trunk.toml's [serve] csp is "
             "the one source of the policy (remove the tag from www/index.html)")
    head = re.search(r"<head\b[^>]*>", html, re.I)
    if not head:
        fail("the page has no <head>")
    at = head.end()
    charset = re.compile(r"\s*<meta\b[^>]*\bcharset\b[^>]*>", re.I).match(html, at)
    if charset:
        at = charset.end()
    first = re.compile(r"<(script|link|style|base)\b", re.I).search(html, head.end())
    if first and first.start() < at:
        fail("a <script>, <link>, <style> or <base> comes before the place for the meta tag")
    content = policy.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    tag = f'\n  <meta http-equiv="Content-Security-Policy" content="{content}" />'
    return html[:at] + tag + html[at:]


def main():
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=repo / "Trunk.toml", help="trunk's config (its [serve] csp)")
    ap.add_argument("html", type=Path, nargs="?", help="the built page (default: $TRUNK_STAGING_DIR/index.html)")
    args = ap.parse_args()
    html_path = args.html
    if html_path is None:
        staging = os.environ.get("TRUNK_STAGING_DIR")
        if not staging:
            fail("give the page's path, or run as a trunk hook (TRUNK_STAGING_DIR)")
        html_path = Path(staging) / "index.html"

    with open(args.config, "rb") as f:
        csp = tomllib.load(f).get("serve", {}).get("csp")
    if not isinstance(csp, list) or not all(isinstance(d, str) for d in csp):
        fail(f"{args.config} has no [serve] csp (a list of directives)")

    html = html_path.read_text(encoding="utf-8")
    scripts, styles, rewritten = inline_hashes(html)
    if rewritten:
        print(f"csp_meta: {html_path} has trunk serve's autoreload script (rewritten per request, so it "
              "cannot be hashed): no meta policy; trunk serve sends the policy as a header")
        return
    policy, dropped = meta_policy(csp, scripts, styles)
    out = insert_meta(html, policy)
    tmp = html_path.with_name(html_path.name + ".csp-tmp")
    tmp.write_text(out, encoding="utf-8")
    os.replace(tmp, html_path)
    note = f"; left out (ignored in a meta policy): {', '.join(dropped)}" if dropped else ""
    print(f"csp_meta: meta Content-Security-Policy in {html_path}: {len(scripts)} inline script hash(es), "
          f"{len(styles)} inline style hash(es){note}")


if __name__ == "__main__":
    main()
