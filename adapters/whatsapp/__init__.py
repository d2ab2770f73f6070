"""The WhatsApp channel (Cloud API): adapters/whatsapp/channel.py; the webhook's payloads in notifications.py,
the Graph send endpoint and its errors in graph.py."""

from adapters.whatsapp.channel import WhatsAppChannel, create_adapter

__all__ = ["WhatsAppChannel", "create_adapter"]
