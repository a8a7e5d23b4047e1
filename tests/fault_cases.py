"""Helpers of the fault-matrix tests: a tiny training config, a CLI runner, meta editing."""

from __future__ import annotations

from pathlib import Path

def transformer_toml(width: int, heads: int, ffn: int, projector: int, embedding: int, stages: list[dict],
                     val_fraction: float = 0.3, eval_batch_size: int = 16, dropout: float = 0.0,
                     patience: int | None = None) -> str:
    """A small transformer training config as TOML text: the one writer of the tests' configs."""
    top = [f"val_fraction = {val_fraction}", f"eval_batch_size = {eval_batch_size}"]
    top += [f"patience = {patience}"] if patience is not None else []
    model = ['[model]', 'kind = "transformer"', f"d_model = {width}", f"num_heads = {heads}", "num_layers = 1",
             f"ffn_dim = {ffn}", f"projector_hidden = {projector}", f"embedding_dim = {embedding}",
             f"dropout = {dropout}"]
    parts = ["\n".join(top), "\n".join(model)]
    for stage in stages:
        lines = ["[[stages]]"] + [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in stage.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def tiny_config(folder: Path, max_epochs: int = 1, d_model: int = 32) -> Path:
    """Write a seconds-long training config; returns its path."""
    path = folder / f"tiny_{max_epochs}_{d_model}.toml"
    path.write_text(transformer_toml(d_model, 2, 32, 32, 16,
                                     [dict(artists_per_batch=3, crop=10, lr=1e-3, max_epochs=max_epochs)]))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `artistsim ARGV` run in this process."""
    from artistsim.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, verb: str, *needles: str) -> None:
    """The CLI's promise: exit 2, one line `artistsim VERB: error: ...` holding each needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(f"artistsim {verb}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def edit_meta(root: Path, split: str, edit) -> None:
    """Rewrite a meta file through `edit(list of lines) -> list of lines` (header is line 1)."""
    path = root / f"{split}_meta.tsv"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def meta_rows(root: Path, split: str) -> list[list[str]]:
    return [line.split("\t") for line in (root / f"{split}_meta.tsv").read_text().splitlines()[1:]]


def set_cell(root: Path, split: str, line: int, column: int, value: str) -> None:
    """Set one cell of a meta file; `line` counts as the messages do (the header is line 1)."""
    def edit(lines: list[str]) -> list[str]:
        cells = lines[line - 1].split("\t")
        cells[column] = value
        lines[line - 1] = "\t".join(cells)
        return lines

    edit_meta(root, split, edit)
