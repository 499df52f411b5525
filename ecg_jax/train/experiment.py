"""What a training config means on this machine: network, members, chunks, mesh, fingerprints.

Shared by training (loop.py) and evaluation (ecg_jax/evaluation.py), so both
build the same members, the same chunk layout and the same checkpoint
fingerprints from a config, and neither imports the other.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ecg_jax.config_utils import read_json_file
from ecg_jax.errors import CheckpointError
from ecg_jax.models import create_model, display_name_of, is_builtin, method_id_of
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import MemberConsts, member_consts, segment_keys
from ecg_jax.train.engine import Hyper, MemberState, TrainSettings, make_init_one, settings_hyper
from ecg_jax.train.members import Member, chunk_members, members_of

# `loop="auto"` is the scanned epoch on every backend: one dispatch per epoch.
# On CPU it is also the faster loop and computes the host loop's bits, because
# the backward convolutions are written in the layout XLA:CPU gives its Eigen
# kernels inside loop bodies too (models/layers.py, `conv1d`; BENCHMARKS.md,
# "scan vs host on CPU").
AUTO_LOOP = "scan"
# Members per device per program when `max_members_per_program=0` on CPU:
# XLA:CPU runs a vmapped (grouped) convolution of k members slower than k
# plain ones (BENCHMARKS.md, "members per device on CPU"), so each CPU device
# trains one member at a time and the chunks run one after another.
CPU_MEMBERS_PER_DEVICE = 1
# Fraction of a device's memory a program may plan to use.
MEMORY_FRACTION = 0.8


def method_id(config: ml_collections.ConfigDict) -> str:
    """The results/table id of a config's network (CIADNet ablation variants included; an external
    network's: its class name in lower case, ecg_jax.models.method_id_of)."""
    if config.model != "ciadnet":
        return method_id_of(config.model)
    kw = config.model_kwargs.to_dict() if hasattr(config.model_kwargs, "to_dict") else dict(config.model_kwargs)
    ch, sp = kw.get("channel_shrink", True), kw.get("spatial_shrink", True)
    return {(True, True): "ciadnet", (True, False): "ciadnet_channel",
            (False, True): "ciadnet_spatial", (False, False): "ciadnet_base"}[(bool(ch), bool(sp))]


def resolve_parallelism(value: str) -> str:
    """`auto` is vmap everywhere: on CPU each device holds one member, where vmap is a plain step."""
    return "vmap" if value == "auto" else value


def resolve_loop(value: str) -> str:
    return AUTO_LOOP if value == "auto" else value


def n_train_windows(config) -> int:
    return round(config.data.n_windows * config.data.train_fraction)


@dataclasses.dataclass
class Experiment:
    """A resolved config turned into the objects training and evaluation share."""

    config: ml_collections.ConfigDict
    model: object
    settings: TrainSettings
    loop: str
    mesh: object
    members: list[Member]

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, n_train: int | None = None) -> "Experiment":
        model = create_model(config.model, **config.model_kwargs.to_dict())
        n_train = n_train_windows(config) if n_train is None else n_train
        settings = TrainSettings.from_config(config, n_train, resolve_parallelism(config.train.member_parallelism))
        return cls(config, model, settings, resolve_loop(config.train.loop), sharding.member_mesh(),
                   members_of(config))

    def with_train_windows(self, n_train: int) -> "Experiment":
        """The same experiment with the schedule of `n_train` training windows (the prepared data's count,
        which may differ from the config's nominal one); model, mesh and members are kept."""
        settings = TrainSettings.from_config(self.config, n_train,
                                             resolve_parallelism(self.config.train.member_parallelism))
        return self if settings == self.settings else dataclasses.replace(self, settings=settings)

    @property
    def method(self) -> str:
        return method_id(self.config)

    @property
    def row_fields(self) -> dict:
        """Extra fields of this experiment's result rows: an external network's display name (tables have
        no name for it otherwise)."""
        return {} if is_builtin(self.config.model) else {"network_label": display_name_of(self.config.model)}

    @property
    def n_devices(self) -> int:
        return sharding.n_devices(self.mesh)

    def abstract_state(self, n: int) -> MemberState:
        """Shapes and dtypes of `n` members' stacked state, without running (or compiling) init."""
        init = jax.vmap(make_init_one(self.model, self.settings))
        return jax.eval_shape(init, jax.ShapeDtypeStruct((n,), jnp.int32))

    def n_params(self) -> int:
        return sum(int(np.prod(x.shape[1:])) for x in jax.tree_util.tree_leaves(self.abstract_state(1).params))

    def fingerprint(self, chunk: Sequence[Member]) -> dict:
        """What a chunk's checkpoint must agree with to be resumed or evaluated."""
        c = self.config
        return {
            "model": c.model,
            # As the checkpoint stores it (JSON): kernels (17, 17, 7, 7) and [17, 17, 7, 7] are one config.
            "model_kwargs": json.loads(json.dumps(c.model_kwargs.to_dict())),
            "members": [m.to_json() for m in chunk],
            "window": c.data.window,
            "batch_size": c.train.batch_size,
            "param_shapes": checkpoints.param_shapes(self.abstract_state(1).params),
            # Every stored array's shape and dtype (optimizer state, statistics, key data): a
            # changed optimizer or PRNG implementation is a mismatch, never mistaken for damage.
            "state_layout": checkpoints.state_layout(self.abstract_state(1)),
        }

    def padded(self, chunk: Sequence[Member]) -> int:
        return sharding.padded_count(len(chunk), self.mesh)

    def chunk_seeds(self, chunk: Sequence[Member]) -> jax.Array:
        seeds = np.asarray([m.seed for m in chunk], np.int32)
        return sharding.put_members(seeds, self.mesh, self.padded(chunk))

    def segment_keys(self, prepared) -> tuple[str, ...]:
        """The noise segment sets on the device: those of every member of the experiment."""
        return segment_keys(prepared, self.members)

    def member_hyper(self, member: Member) -> Hyper:
        """A member's optimizer hyperparameters: the config's train values, its sweep point's over them."""
        return settings_hyper(self.settings, member.overrides)

    def chunk_consts(self, prepared, chunk: Sequence[Member]) -> MemberConsts:
        consts = member_consts(prepared, chunk, self.segment_keys(prepared), [self.member_hyper(m) for m in chunk])
        return sharding.put_members(consts, self.mesh, self.padded(chunk))

    @property
    def n_decays(self) -> int:
        """Learning-rate decays of every member's schedule (one shape for all points of a sweep)."""
        return int(self.member_hyper(self.members[0]).decay_step.shape[0])


def read_layout(workdir: str) -> dict | None:
    path = os.path.join(workdir, "members.json")
    if not os.path.exists(path):
        return None
    return read_json_file(path)


def chunks_of(experiment: Experiment, members_per_program: int) -> list[list[Member]]:
    return chunk_members(experiment.members, members_per_program)


def workdir_chunks(workdir: str, experiment: Experiment) -> list[list[Member]]:
    """The chunk layout a workdir's checkpoints were written with (members.json)."""
    layout = read_layout(workdir)
    if layout is None:
        raise CheckpointError(f"{workdir} has no members.json: train first (scripts/train.py)")
    return chunks_of(experiment, int(layout["members_per_program"]))
