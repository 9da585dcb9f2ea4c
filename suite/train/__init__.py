"""The training loop, checkpoints, schedules and torch.distributed set-up."""
from ..distributed import DistEnv, init_distributed
from .checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, resume_checkpoint,
                         save_checkpoint, verify_checkpoint)
from .launch import launch_local
from .loop import Interrupted, train
from .schedule import lr_factor, warmup_steps
from .trackers import Trackers, open_trackers

__all__ = ["train", "launch_local", "Interrupted", "DistEnv", "init_distributed", "latest_checkpoint",
           "list_checkpoints", "load_checkpoint", "save_checkpoint", "resume_checkpoint", "verify_checkpoint",
           "CheckpointError",
           "lr_factor", "warmup_steps", "open_trackers", "Trackers"]
