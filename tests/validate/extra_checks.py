"""A check module outside the package, registered through CHECK_MODULES the way geometry.py will be."""

from __future__ import annotations

from collections.abc import Iterator

from genima_data.validate import EpisodeContext, Finding, check


@check(
    "test_counts_frames", scope="episode", description="Warns with each episode's frame count.", default=False
)
def counts_frames(ctx: EpisodeContext) -> Iterator[Finding]:
    yield ctx.warning(f"{len(ctx.array('robot/joint_positions'))} frames", field="robot/joint_positions")


@check("test_crashes", scope="episode", description="Fails on every episode.", default=False)
def crashes(ctx: EpisodeContext) -> Iterator[Finding]:
    raise KeyError("a bug in a check")


BUILT: list[object] = []


@check("test_builds_once", scope="episode", description="Builds an expensive object once.", default=False)
def builds_once(ctx: EpisodeContext) -> Iterator[Finding]:
    model = ctx.cached("test_model", lambda: BUILT.append(object()) or BUILT[-1])
    yield ctx.info(f"model {id(model)}")
