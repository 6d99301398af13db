"""The DynamoDB store."""

from tierstore.stores.dynamodb.store import (
    BotocoreTransport,
    DynamoFault,
    DynamoStore,
    DynamoStoreConfig,
    Transport,
    WireTransport,
)

__all__ = ["BotocoreTransport", "DynamoFault", "DynamoStore", "DynamoStoreConfig", "Transport", "WireTransport"]
