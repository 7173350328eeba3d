"""Facts about an image attachment: format, size, camera EXIF, a thumbnail and a perceptual hash.

Pure functions on bytes. Only the allow-listed formats are ever handed to a decoder, the
declared size is checked before any pixel is decoded, and damaged or hostile input becomes a
flag on the result, never an exception. Nothing here logs image content or metadata values.

The modules, by job:

- `analysis`: `analyze_image`, every fact about one image at once;
- `facts`: what is learnt (`ImageFacts`) and the flags for what was wrong;
- `formats`: the allowed formats, and the format the bytes, type or name announce;
- `decode_guard`: opening and decoding within the pixel limit, bombs and damage as flags;
- `exif`: camera facts and the orientation from EXIF;
- `pictures`: the upright picture (also for OCR), the thumbnail and the difference hash.
"""
