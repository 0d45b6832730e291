"""Local stand-ins for what lives outside the machine (WhatsApp gateways)."""
