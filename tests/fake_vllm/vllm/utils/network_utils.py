"""vllm.utils.network_utils.get_ip (vLLM 0.30.0), imported by TRL's server client."""


def get_ip() -> str:
    return "127.0.0.1"
