"""Media handling: recognise, check and decode inputs (images, audio) and encode MP4s.

Modules here import Pillow, numpy, OpenCV and PyAV only inside their functions, so the API
process can import `kinema.media.images` to check a data: URI at submit time without
paying for (or even having) the heavy media stack loaded.
"""
