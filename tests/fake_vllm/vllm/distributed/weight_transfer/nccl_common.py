"""vllm.distributed.weight_transfer.nccl_common.trainer_init (vLLM 0.30.0), imported by TRL's server client at import;
server mode is not faked."""


def trainer_init(*args, **kwargs):
    raise NotImplementedError("fake vLLM: server mode (NCCL weight transfer) is not faked")
