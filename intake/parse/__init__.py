"""Reading a stored mail: parts, headers, containers, images, OCR text, forwarded originals."""
