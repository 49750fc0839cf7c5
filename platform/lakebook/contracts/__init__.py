"""Data contracts: YAML declarations compiled to Arrow schemas and vectorised validators."""

from .inference import Inferred, contract_yaml, infer_contract, read_sample
from .loading import ContractSet, get_contract, load_contract_set, load_contracts, parse_contract
from .model import Contract, FieldSpec
from .validate import BLOB, EVENT_ID, INGESTED_AT, ROW, CompiledContract, Rejection, ValidationResult

__all__ = [
    "Contract", "FieldSpec", "CompiledContract", "Rejection", "ValidationResult",
    "BLOB", "EVENT_ID", "INGESTED_AT", "ROW", "ContractSet", "get_contract", "load_contract_set", "load_contracts",
    "parse_contract", "Inferred", "contract_yaml", "infer_contract", "read_sample",
]
