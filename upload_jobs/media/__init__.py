"""Video files: the MP4 box reader (`mp4`), the streaming remux and its checks (`remux`), running
ffmpeg (`ffmpeg_process`) and the synthetic clips tests and the demo make (`samples`)."""
