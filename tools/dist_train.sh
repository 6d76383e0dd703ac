#!/usr/bin/env bash
# Distributed training with torchrun (one process per GPU; see docs/distributed.md):
#   bash tools/dist_train.sh CONFIG GPUS [train.py options...]
# Multi-node: run on every node with the same NNODES, MASTER_ADDR and PORT and its own NODE_RANK:
#   NNODES=2 NODE_RANK=0 PORT=29500 MASTER_ADDR=10.1.1.1 bash tools/dist_train.sh CONFIG 8 [...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (else MASTER_PORT, else
# 29500), PYTHON (python). Without CUDA, GPUS is the number of CPU processes and gloo is used.
set -e
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [train.py options...]  (GPUS: processes on this node)" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: GPUS must be a positive number of processes per node, got '$GPUS'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
