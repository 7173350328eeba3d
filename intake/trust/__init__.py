"""What a mail proves about its sender: DKIM, Authentication-Results and secret reply tokens."""
