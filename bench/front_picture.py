"""README's picture: a held-out view of a trained run beside the model's render of it and the
saliency the model sees along each ray (viridis; dark grey where a ray sees nothing).

  python bench/front_picture.py RUN [--view 0] [--out docs/front.png]
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

HERE = Path(__file__).resolve().parent


@click.command()
@click.argument("run", type=click.Path(path_type=Path, exists=True))
@click.option("--view", type=int, default=0, show_default=True, help="Index in the run's test split.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=HERE.parent / "docs" / "front.png",
              show_default=True)
def main(run, view, out):
    from hollow_taichi import runs
    from hollow_taichi.images import write_png
    from hollow_taichi.viewer import frames

    loaded = runs.load_model(run, "cpu")
    test = runs.scene_for(loaded, None).test
    cameras = test.cameras.subset([view])
    truth = test.images[view].numpy()
    if truth.shape[2] == 4:
        alpha = truth[..., 3:] / 255.0
        truth = np.round(truth[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    colour = frames.render_frame(loaded.renderer, cameras, "colour").image
    saliency = frames.render_frame(loaded.renderer, cameras, "saliency").image
    write_png(out, np.concatenate([truth, colour, saliency], axis=1))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
