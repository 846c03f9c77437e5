"""Client and data model for the FlexNet Embedded License Server (LLS/CLS) REST API."""

from vlm.flexnet.client import FlexNetClient
from vlm.flexnet.errors import (
    AuthenticationError,
    FlexNetError,
    NotFoundError,
    RefusedError,
    TransientError,
)
from vlm.flexnet.models import (
    FeatureSlice,
    FeatureTotal,
    HostId,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    sum_feature_slices,
)

__all__ = [
    "AuthenticationError",
    "FeatureSlice",
    "FeatureTotal",
    "FlexNetClient",
    "FlexNetError",
    "HostId",
    "NotFoundError",
    "RefusedError",
    "Reservation",
    "ReservationEntry",
    "ReservationGroup",
    "TransientError",
    "sum_feature_slices",
]
