"""Rebuild the labelled real-music set from Debian packages (no internet but the Debian mirror).

Why these packages: free games ship their soundtracks with per-composer credits, so the
artist label of every track is known, and Debian's licences (GPL, CC-BY, CC-BY-SA, ...)
allow local use (all are Debian main, DFSG-free: GPL, CC-BY, CC-BY-SA, CC0, ...; each
package's terms are in ROOT/x/usr/share/doc/PKG/copyright). The audio is never committed: this script downloads the .deb files with
`apt-get download` (no installation, no root needed beyond apt's cache), unpacks them
with `dpkg -x`, and writes a manifest (`path`, `artist`) that `artistsim featurize` reads.

Artist labels, per source (ARTIST_SOURCES):
- the file's artist tag, else its composer tag (Ogg/Opus comments, read by mutagen) for
  wesnoth, naev, hyperrogue, supertux, freedroidrpg, extremetuxracer, widelands,
  colobot, singularity, xmoto;
- the `composer` attribute of SuperTuxKart's `data/music/*.music` files;
- the `author` of each track in Warzone 2100's `music/albums/*/album.json`;
- the song folder's band for Frets on Fire's song packs (muldjord, sectoid; the mixed
  `song.ogg` only, not the guitar stem).
Names are normalised (case, spacing, a parenthesised nickname dropped, known aliases in
ALIASES); tracks credited to
several people and tracks shorter than MIN_SECONDS are left out, and only artists with
at least MIN_TRACKS tracks are kept (a query needs another track of its artist).

Usage:
    python benchmarks/real_music.py [--root /work/data/real_music]
    artistsim featurize /work/data/real_music/manifest.tsv /work/data/real_music/features --workers 2
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

PACKAGES = ("wesnoth-1.16-music", "naev-data", "supertuxkart-data", "supertux-data", "hyperrogue-music",
            "warzone2100-music", "fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid", "freedroidrpg-data",
            "extremetuxracer-data", "widelands-data", "colobot-common-sounds", "singularity-music", "xmoto-data")
AUDIO = (".ogg", ".opus", ".flac", ".wav", ".mp3")
MIN_SECONDS = 20.0
MIN_TRACKS = 2
# Known spellings of one person (from the packages' own credits).
ALIASES = {
    "0zone0ne": "ozoneone",
    "krobonil": "chris leutwyler",
    "chris leutwyler (krobonil)": "chris leutwyler",
    "http://zhaymusic.com/": "joseph g. toscano",
    "keith baylis aka vim": "keith baylis",
}
TAG_DIRS = ("wesnoth/1.16/data/core/music", "naev/dat/snd/music", "hyperrogue/music", "supertux2/music",
            "freedroidrpg/data/sound/music", "etr/music", "widelands/data/music", "colobot/music",
            "singularity/music", "xmoto/Textures/Musics")


def normalise(name: str) -> str | None:
    """One spelling per person; None for joint credits and non-names."""
    key = " ".join(re.sub(r"\(.*?\)", "", name).strip().lower().split())
    if not key or re.search(r"\s(&|and)\s|,|opengameart|nasa", key):
        return None
    return ALIASES.get(key, key)


def tag_artist(path: Path) -> str | None:
    import mutagen

    try:
        f = mutagen.File(str(path), easy=True)
    except Exception:  # noqa: BLE001 - a broken tag just means no label
        return None
    if f is None:
        return None
    values = f.get("artist") or f.get("composer") or []
    return values[0] if values else None


def duration(path: Path) -> float:
    import soundfile as sf

    try:
        return sf.info(str(path)).duration
    except Exception:  # noqa: BLE001 - unreadable: featurize will report it
        return 0.0


def labelled_tracks(share: Path) -> list[tuple[Path, str, str]]:
    """(path, raw artist credit, source) for every credited track under usr/share."""
    out: list[tuple[Path, str, str]] = []
    for rel in TAG_DIRS:
        for d in share.glob(f"**/{rel}"):
            for p in sorted(d.rglob("*")):
                if p.suffix.lower() in AUDIO and (a := tag_artist(p)):
                    out.append((p, a, f"{rel.split('/')[0]} tag"))
    for m in sorted(share.glob("**/supertuxkart/data/music/*.music")):
        node = ET.parse(m).getroot()
        if node.get("composer") and (m.parent / node.get("file", "")).is_file():
            out.append((m.parent / node.get("file"), node.get("composer"), "supertuxkart .music composer"))
    for album in sorted(share.glob("**/warzone2100/music/albums/*/album.json")):
        for t in json.loads(album.read_text()).get("tracks", []):
            if t.get("author") and (album.parent / t["filename"]).is_file():
                out.append((album.parent / t["filename"], t["author"], "warzone2100 album.json author"))
    for band in ("muldjord", "sectoid"):
        for song in sorted(share.glob(f"**/fretsonfire/data/songs/{band}/*/song.ogg")):
            out.append((song, band, "fretsonfire song pack"))
    return out


def build(root: Path, download: bool = True) -> Path:
    debs, tree = root / "debs", root / "x"
    debs.mkdir(parents=True, exist_ok=True)
    if download:
        missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
        if missing:
            subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
        for deb in sorted(debs.glob("*.deb")):
            if any(deb.name.startswith(p + "_") for p in PACKAGES):
                subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
    rows, seen = [], set()
    for path, credit, source in labelled_tracks(tree / "usr" / "share"):
        artist = normalise(credit)
        if artist is None or path in seen or duration(path) < MIN_SECONDS:
            continue
        seen.add(path)
        rows.append((path, artist, source))
    counts = collections.Counter(a for _, a, _ in rows)
    rows = [r for r in rows if counts[r[1]] >= MIN_TRACKS]
    manifest = root / "manifest.tsv"
    lines = ["path\tartist"] + [f"{p.relative_to(root)}\t{a}" for p, a, _ in rows]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    by_source = collections.Counter(s for _, _, s in rows)
    kept = collections.Counter(a for _, a, _ in rows)
    hours = sum(duration(p) for p, _, _ in rows) / 3600
    summary = {"tracks": len(rows), "artists": len(kept), "hours": round(hours, 2),
               "tracks_per_artist": dict(kept.most_common()), "sources": dict(by_source), "packages": PACKAGES}
    (root / "manifest_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{manifest}: {len(rows)} tracks, {len(kept)} artists, {hours:.1f} h of audio", file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("/work/data/real_music"))
    p.add_argument("--no-download", action="store_true", help="use the .deb files already in ROOT/debs")
    args = p.parse_args(argv)
    build(args.root, download=not args.no_download)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
