"""``foureyes standin-model``: serve the stand-in model for ``loan_triage`` on loopback (an entry point)."""

from __future__ import annotations

import click

FAULTS = ("unknown_tool", "malformed_json", "stall", "hallucinated_id", "out_of_policy")


@click.command("standin-model")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(FAULTS),
    help="A misbehaviour to switch on (repeatable).",
)
def standin_model(port: int, faults: tuple[str, ...]) -> None:
    """Serve the deterministic stand-in for a model (OpenAI-compatible, not a model) until interrupted.

    Point the agents at it with FOUREYES_MODELS=standin=http://127.0.0.1:PORT/v1; in production
    point FOUREYES_MODELS at a real OpenAI-compatible endpoint (vLLM, Ollama, a hosted API).
    """
    from foureyes.examples.mortgage_pipeline.standin_policy import loan_triage_policy  # noqa: PLC0415
    from foureyes.standin_model import StandinModelServer  # noqa: PLC0415

    server = StandinModelServer(loan_triage_policy, faults=faults, port=port)
    click.echo(f"stand-in model (deterministic, not a model) at {server.url}; faults: {', '.join(faults) or 'none'}")
    click.echo(f"  FOUREYES_MODELS=standin={server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
