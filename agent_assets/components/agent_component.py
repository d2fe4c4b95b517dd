"""``foureyes.AgentComponent``: a supervised agent declared in a ``defs.yaml``.

The YAML says what ``define_agent`` says in Python — one spec, two spellings — and the
component builds the same definitions (``foureyes.definitions``), so agents declared both
ways sit in one project. Code is named by dotted path (a leading ``.`` is relative to the
project's defs module); rules are inline or in a rules file beside the ``defs.yaml``.

``dg scaffold defs foureyes.AgentComponent <name>`` writes a ``defs.yaml`` to fill in and a
``agent.py`` with the ``propose`` callable and proposals schema it points at.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import BaseModel, Field

from foureyes.agent import Agent, define_agent
from foureyes.agent_definitions import definitions
from foureyes.checks.approval_policy import ApprovalPolicy
from foureyes.checks.rule_files import load_rules
from foureyes.checks.rule_kinds import rule_from_dict
from foureyes.checks.supervisor import BLOCK, DROP
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.errors import AgentDefinitionError
from foureyes.resources.resource_keys import DEFAULT_TARGET


def _resolve_object(context: dg.ResolutionContext, value: object) -> object:
    """``my_project.agents.propose`` (or ``.agents.propose``, in the project's defs module) -> the object."""
    if not isinstance(value, str):  # given as an object already (a template, or Python)
        return value
    module, _, attribute = value.lstrip(".").rpartition(".")
    if value.startswith("."):
        defs_module = dg.ComponentLoadContext.from_resolution_context(context).defs_module_name
        module = f"{defs_module}.{module}" if module else defs_module
    if not module or not attribute:
        raise AgentDefinitionError(f"{value!r} is not a dotted path (module.attribute)")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise AgentDefinitionError(f"cannot import {value!r}: {exc}") from None


def _dotted(description: str, example: str):
    return dg.Resolver(_resolve_object, model_field_type=str, description=description, examples=[example])


ResolvedCallable = Annotated[
    Callable[..., Any], _dotted("Dotted path to a Python callable.", "my_project.agents.pricing.propose")
]
ResolvedObject = Annotated[Any, _dotted("Dotted path to a Python object.", "my_project.agents.pricing.Proposals")]


def _resolve_inputs(context: dg.ResolutionContext, value: object) -> list[AssetInput]:
    """``[prices, {asset: desks, max_staleness: 5, judged: false}]`` -> asset inputs."""
    items = value if isinstance(value, list) else [value]
    inputs = []
    for item in items:
        if isinstance(item, AssetInput):
            inputs.append(item)
        elif isinstance(item, str):
            inputs.append(AssetInput(item))
        elif isinstance(item, dict) and isinstance(item.get("asset"), str) and set(item) <= INPUT_FIELDS:
            inputs.append(AssetInput(**item))
        else:
            raise AgentDefinitionError(
                f"input {item!r} is not an asset key or a mapping of {sorted(INPUT_FIELDS)} (with 'asset')"
            )
    return inputs


INPUT_FIELDS = {"asset", "max_staleness", "judged"}
ResolvedInputs = Annotated[
    list[AssetInput],
    dg.Resolver(
        _resolve_inputs,
        model_field_type=list[str | dict[str, Any]],
        description=(
            "Assets of the project: an asset key, or {asset, max_staleness (partitions a last-known-good "
            "fallback may be behind, default 3), judged (serve only partitions no blocking check failed on)}."
        ),
        examples=[["prices", {"asset": "reference/desks", "max_staleness": 5}]],
    ),
]


class ApprovalModel(dg.Resolvable, dg.Model):
    """Which proposals wait for a human: one approver above ``above``, two above ``four_eyes_above``."""

    id: str
    description: str
    column: str = Field(description="The proposal column whose absolute value is the size.")
    above: float
    four_eyes_above: float | None = None
    expires_after_hours: float = Field(default=24.0, description="Undecided this long: rejected by default.")
    when: dict[str, Any] = Field(default_factory=dict, description="Only proposals whose columns equal these.")
    summary: str = "{action} {proposal_id}"


class AgentScaffoldParams(BaseModel):
    """``dg scaffold defs foureyes.AgentComponent NAME --json-params '{"inputs": ["prices"]}'``."""

    inputs: list[str] = Field(default_factory=lambda: ["my_input_asset"])
    target: str = DEFAULT_TARGET


class AgentScaffolder(dg.Scaffolder[AgentScaffoldParams]):
    """Writes ``defs.yaml`` and the ``agent.py`` it points at: a schema and a ``propose`` to replace."""

    @classmethod
    def get_scaffold_params(cls) -> type[AgentScaffoldParams]:
        return AgentScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[AgentScaffoldParams]) -> None:
        folder = request.target_path
        name = folder.name.replace("-", "_")
        inputs = "\n".join(f"    - {i}" for i in request.params.inputs)
        (folder / "agent.py").write_text(_AGENT_PY.format(first_input=request.params.inputs[0]))
        (folder / "defs.yaml").write_text(
            _DEFS_YAML.format(type=request.type_name, name=name, inputs=inputs, target=request.params.target)
        )


@dg.scaffold_with(AgentScaffolder)
class AgentComponent(dg.Component, dg.Resolvable, dg.Model):
    """A supervised agent: proposals asset, supervisor checks and executor, with foureyes' resources and sensors.

    In a ``defs.yaml`` (``dg scaffold defs foureyes.AgentComponent watcher`` writes one)::

        type: foureyes.AgentComponent
        attributes:
          name: watcher
          inputs: [trades, {asset: desks, max_staleness: 5}]
          propose: .watcher.agent.propose
          proposals_schema: .watcher.agent.Proposals
          natural_key: [desk]
          actions: [notify]
          rules_file: rules.yaml

    Examples:
        >>> import dagster as dg
        >>> import pandas as pd
        >>> import pandera.pandas as pa
        >>> import foureyes
        >>> class Alerts(pa.DataFrameModel):
        ...     desk: str
        ...     action: str
        ...     rationale: str
        ...     confidence: float
        >>> component = foureyes.AgentComponent(
        ...     name="watcher",
        ...     inputs=[foureyes.AssetInput("trades")],
        ...     propose=lambda ctx: pd.DataFrame(),
        ...     proposals_schema=Alerts,
        ...     natural_key=["desk"],
        ...     actions=["notify"],
        ...     rules=[{"kind": "threshold", "id": "sure", "description": "Sure enough", "column": "confidence",
        ...             "op": ">=", "value": 0.6, "message": "{desk}: {confidence}"}],
        ... )
        >>> sorted(a.key.to_user_string() for a in dg.build_defs_for_component(component).assets)
        ['watcher_actions', 'watcher_proposals']
    """

    name: str = Field(description="The agent's name: its assets are <name>_proposals and <name>_actions.")
    inputs: ResolvedInputs
    propose: ResolvedCallable
    proposals_schema: ResolvedObject
    natural_key: list[str] = Field(description="Columns that identify one proposal.")
    actions: list[str] = Field(description="The actions it may propose ('hold' is always allowed).")
    references: ResolvedInputs = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list, description="Rules, as in a rules file.")
    rules_file: str | None = Field(default=None, description="A YAML rules file, relative to this defs.yaml.")
    approval: ApprovalModel | None = None
    on_rejection: Literal["drop", "block"] = Field(default=DROP, description=f"{DROP}: drop rejected; {BLOCK}: all.")
    target: str = Field(default=DEFAULT_TARGET, description="Resource key of the action target.")
    partitions_def: ResolvedObject | None = Field(default=None, description="Dotted path; default business days.")
    baseline: ResolvedCallable | None = None
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    def agent(self, base: Path | None = None) -> Agent:
        """The agent this YAML declares (``base``: the folder a relative ``rules_file`` is in)."""
        rules = [rule_from_dict(r) for r in self.rules]
        if self.rules_file:
            path = Path(self.rules_file)
            rules += load_rules(path if path.is_absolute() or base is None else base / path)
        optional = {"partitions_def": self.partitions_def} if self.partitions_def is not None else {}
        return define_agent(
            self.name,
            inputs=self.inputs,
            propose=self.propose,
            proposals_schema=self.proposals_schema,
            natural_key=self.natural_key,
            actions=self.actions,
            rules=rules,
            approval=_approval(self.approval) if self.approval else None,
            references=self.references,
            on_rejection=self.on_rejection,
            target=self.target,
            baseline=self.baseline,
            description=self.description,
            owners=self.owners,
            tags=self.tags,
            **optional,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return definitions(agents=[self.agent(context.path)])


def _approval(model: ApprovalModel) -> ApprovalPolicy:
    return ApprovalPolicy(
        id=model.id,
        description=model.description,
        column=model.column,
        above=model.above,
        four_eyes_above=model.four_eyes_above,
        expires_after=dt.timedelta(hours=model.expires_after_hours),
        when=model.when,
        summary=model.summary,
    )


_DEFS_YAML = """\
type: {type}

attributes:
  name: {name}
  inputs:                 # assets of this project: fresh, or last known good when a blocking check failed
{inputs}
  propose: .{name}.agent.propose            # a leading '.' is relative to the project's defs module
  proposals_schema: .{name}.agent.Proposals
  natural_key: [item_id]
  actions: [flag]         # what it may propose; the supervisor rejects anything else
  target: {target}
  rules:
    - id: confident_enough
      kind: threshold
      description: Act only on confident proposals.
      column: confidence
      op: ">="
      value: 0.5
      message: "{{item_id}}: confidence {{confidence}} is below 0.5"
  # approval: {{id: big_ones, description: Above 1000 needs a person, column: size, above: 1000}}
  # partitions_def: my_project.defs.partitions.daily   # default: business days
"""

_AGENT_PY = '''\
"""The agent's code: what it proposes, and the schema its proposals must have."""

import pandas as pd
import pandera.pandas as pa

import foureyes


class Proposals(pa.DataFrameModel):
    item_id: str
    action: str = pa.Field(isin=["flag", "hold"])
    rationale: str
    confidence: float = pa.Field(ge=0, le=1)


def propose(ctx: foureyes.ProposalContext) -> pd.DataFrame:
    """Read ctx.inputs, return one row per proposal (ctx.tier says whether inputs are fresh)."""
    frame = ctx.inputs["{first_input}"]
    return pd.DataFrame(
        {{"item_id": ["example"], "action": ["hold"], "rationale": [f"{{len(frame)}} rows read"], "confidence": [1.0]}}
    )
'''
