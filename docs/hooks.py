"""MkDocs hooks of the jfv docs site (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

Four jobs, none of which weakens ``mkdocs build --strict``:

1. **Pages from outside ``docs/``.** ``benchmarks/*.md`` become site pages under ``benchmarks/``,
   ``BUILD.md`` becomes ``build.md`` and ``weights/README.md`` ``weights.md`` (``PAGES``); the
   benchmarks get a nav section of their own, ``RESULTS.md`` first.
2. **Links that leave ``docs/``.** A guide page is written to read on GitHub as well, so it links
   to files by their path in the repository (``../benchmarks/study.md``, ``../configs/atlas.py``,
   ``../README.md``). Each such link is resolved against the real location of the page's source
   file, then:

   - a file that is a site page (``PAGES``; ``README.md`` is the site's front page, ``index.md``)
     becomes a relative link to that page (the ``#anchor`` kept, and checked by MkDocs);
   - any other file or folder that exists in the repository (``configs/``, ``jfv/``, ``tests/``,
     scripts) becomes plain text, its repository-relative path in a code span (after the link
     text when that differs): the site does not serve source files, and the link in the page's
     source stays checked on every build;
   - a target that does not exist is left as it is, so MkDocs' own link validation
     (``validation.links.not_found: warn``) reports it and the strict build fails; so is an image
     from outside ``docs/`` (the site serves only ``docs/``'s images: put the image there).

   Links from ``docs/`` into ``docs/`` and absolute URLs are left to MkDocs untouched; the pages
   from outside ``docs/`` get their links into ``docs/`` rewritten to where the site has the file.
3. **Docstring sections that silently do not parse.** griffe logs a Google-style section title it
   had to skip as text (``Returns:`` with no blank line above it, say) at debug level only, so a
   strict build would pass while the page shows ``Returns:`` as a paragraph. Those messages are
   raised to warnings here, and so fail the strict build like any other docstring warning.
4. **``Example:``** is read as the examples section (``SingularExample``, a griffe extension).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent

# repository path -> site path of each page that lives outside docs/ (benchmarks/*.md added below)
PAGES = {"BUILD.md": "build.md", "weights/README.md": "weights.md"}
# repository path -> an existing site page that stands in for it
STAND_INS = {"README.md": "index.md"}

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_LINK = re.compile(r"(!?)\[((?:[^\]\\]|\\.)*)\]\(\s*<?([^)\s>]+)>?(\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.S)


def _benchmark_pages() -> dict[str, str]:
    return {f"benchmarks/{p.name}": f"benchmarks/{p.name}" for p in sorted((ROOT / "benchmarks").glob("*.md"))}


# -- 3. griffe's skipped sections as warnings ---------------------------------------------------------

class _SkippedSections(logging.Filter):
    """Raises griffe's "Possible section skipped" to a warning.

    Only sections (``Args:``, ``Returns:``, ``Raises:``, ``Examples:``, ...): griffe also reports
    skipped *admonitions*, any ``words: text`` line above an indented one, and in prose those are
    mostly sentences ending in a colon, rightly left as text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            if "Possible section skipped" in str(record.msg):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                return True
            return logging.getLogger("mkdocs").isEnabledFor(record.levelno)  # -v still shows the rest
        return True


def on_config(config):
    griffe_log = logging.getLogger("mkdocs.plugins.griffe")  # where mkdocstrings sends griffe's log
    if not any(isinstance(f, _SkippedSections) for f in griffe_log.filters):
        griffe_log.addFilter(_SkippedSections())
    griffe_log.setLevel(logging.DEBUG)
    # 1. the benchmarks' nav section, RESULTS.md first
    pages = sorted(_benchmark_pages().values(), key=lambda p: (not p.endswith("/RESULTS.md"), p))
    nav = config["nav"]
    if nav is not None and not any(isinstance(item, dict) and "Benchmarks" in item for item in nav):
        nav.append({"Benchmarks": pages})  # each page titled by its first heading
    return config


# -- 1. pages from outside docs/ ----------------------------------------------------------------------

def _pages() -> dict[str, str]:
    return {**PAGES, **_benchmark_pages()}


def on_files(files: Files, config) -> Files:
    for repo_path, site_path in _pages().items():
        if (ROOT / repo_path).is_file() and files.get_file_from_path(site_path) is None:
            files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    for png in sorted((ROOT / "benchmarks").glob("*.png")):  # the figures the benchmark pages show
        if files.get_file_from_path(f"benchmarks/{png.name}") is None:
            files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    return files


# -- 2. links that leave docs/ ------------------------------------------------------------------------

def _rewrite(match: re.Match, page_dir: Path, site_dir: str, docs_dir: Path, sites: dict[str, str]) -> str:
    bang, text, target, title = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return match.group(0)  # a URL, an anchor on this page, or an absolute path (MkDocs checks those)
    path, hash_, anchor = target.partition("#")
    resolved = Path(os.path.normpath(page_dir / path))
    if resolved == docs_dir or docs_dir in resolved.parents:
        if docs_dir in page_dir.parents or page_dir == docs_dir:
            return match.group(0)  # from docs/ into docs/: MkDocs resolves and validates it
        # from a page outside docs/ (BUILD.md, benchmarks/) into docs/: the same file, as the site has it
        rel = posixpath.relpath(resolved.relative_to(docs_dir).as_posix(), site_dir or ".")
        return f"{bang}[{text}]({rel}{hash_}{anchor}{title})"
    try:
        repo_path = resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return match.group(0)  # outside the repository: not found, MkDocs reports it
    site_path = sites.get(repo_path)
    if site_path is not None:
        rel = posixpath.relpath(site_path, site_dir or ".")
        return f"{bang}[{text}]({rel}{hash_}{anchor}{title})"
    if not resolved.exists() or bang:
        return match.group(0)  # missing (or an image MkDocs cannot serve): MkDocs reports it
    shown = repo_path + ("/" if resolved.is_dir() else "")
    plain = text.strip().strip("`")
    return f"`{shown}`" if plain.rstrip("/") == repo_path or plain.rstrip("/") == path.rstrip("/") else f"{text} (`{shown}`)"


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    src = page.file.abs_src_path
    if src is None:
        return markdown
    page_dir = Path(src).resolve().parent
    docs_dir = Path(config["docs_dir"]).resolve()
    site_dir = posixpath.dirname(page.file.src_uri)
    sites = {**_pages(), **STAND_INS}
    sites = {repo: site for repo, site in sites.items() if files.get_file_from_path(site) is not None}

    def rewrite_text(text: str) -> str:  # outside code spans
        out, last = [], 0
        for span in _CODE_SPAN.finditer(text):
            out.append(_LINK.sub(lambda m: _rewrite(m, page_dir, site_dir, docs_dir, sites), text[last:span.start()]))
            out.append(span.group(0))
            last = span.end()
        out.append(_LINK.sub(lambda m: _rewrite(m, page_dir, site_dir, docs_dir, sites), text[last:]))
        return "".join(out)

    # fenced code blocks are copied as they are; everything between them is rewritten
    lines, chunk, result, fence = markdown.split("\n"), [], [], None
    for line in lines:
        m = _FENCE.match(line)
        if fence is None and m:
            result.append(rewrite_text("\n".join(chunk)))
            chunk, fence = [line], m.group(2)
        elif fence is not None:
            chunk.append(line)
            if line.strip().startswith(fence[0] * len(fence)) and line.strip().strip(fence[0]) == "":
                result.append("\n".join(chunk))
                chunk, fence = [], None
        else:
            chunk.append(line)
    result.append(rewrite_text("\n".join(chunk)) if fence is None else "\n".join(chunk))
    return "\n".join(result)


# -- 4. "Example:" as Google style's examples section -------------------------------------------------

try:
    from griffe import Extension
except ImportError:  # pragma: no cover - griffe comes with mkdocstrings-python, the docs extra
    Extension = object

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class SingularExample(Extension):
    """A griffe extension (``mkdocs.yml``: ``extensions: [docs/hooks.py:SingularExample]``).

    jfv's docstrings title their doctests ``Example:``, which Google style (Napoleon) reads as the
    examples section; griffe knows only ``Examples:`` and takes ``Example:`` for an admonition,
    rendering ``>>>`` lines as nested quotes and ``x["a"][0]`` as a link. This reads the singular
    as the plural, before the docstring is parsed.
    """

    def on_instance(self, *, obj, **kwargs) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE.sub(r"\1Examples:", docstring.value)
