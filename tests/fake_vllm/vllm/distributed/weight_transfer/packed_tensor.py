"""vllm.distributed.weight_transfer.packed_tensor.packed_nccl_broadcast_producer (vLLM 0.30.0), imported by TRL's
server client at import; server mode is not faked."""


def packed_nccl_broadcast_producer(*args, **kwargs):
    raise NotImplementedError("fake vLLM: server mode (NCCL weight transfer) is not faked")
