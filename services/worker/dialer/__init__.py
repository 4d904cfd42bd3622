"""The outbound dialer: claim due jobs under the business's limit, then place their calls."""
