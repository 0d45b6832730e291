"""Gateways campaignd sends through: an embedded simulator and real WhatsApp services."""
