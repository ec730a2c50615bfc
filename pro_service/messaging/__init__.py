"""Messaging: the patient SMS from the decision to send to the provider's receipt.

Message texts, the outbox (invitations, reminders, resends, sending hours), dispatch with atomic
claims, the provider's delivery reports and replies, and the SMS backends (console and Twilio)."""
