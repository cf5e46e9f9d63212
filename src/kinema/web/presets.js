// The five documented example requests of the AI/ML API's model pages (the seeds), one
// click away. Their media URLs point at the documentation's own files: the server
// fetches them, not this page (replace them with your own files to run offline).

const KLING = "https://s2-111386.kwimgs.com/bs2/mmu-aiplatform-temp/kling/20240620/1.jpeg";
const REFERENCE = "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/";

export const PRESETS = [
  {
    label: "Talking head",
    body: {
      model: "veed/fabric-1.0",
      image_url: "https://v3.fal.media/files/koala/NLVPfOI4XL1cWT2PmmqT3_Hope.png",
      audio_url: "https://v3.fal.media/files/elephant/Oz_g4AwQvXtXpUHL3Pa7u_Hope.mp3",
      resolution: "720p",
    },
  },
  {
    label: "Hailuo video-01",
    body: {
      model: "video-01",
      prompt: "The woman puts on glasses with her hands and then sighs and says slowly: 'Well...'.",
      image_url: KLING,
    },
  },
  {
    label: "Veo 3.1 image-to-video",
    body: {
      model: "google/veo-3.1-i2v-fast",
      prompt: "The woman puts on glasses with her hands and then sighs and says slowly: 'Well...'.",
      image_url: KLING,
    },
  },
  {
    label: "PixVerse lip-sync",
    body: {
      model: "pixverse/v5/image-to-video",
      image_url: `${REFERENCE}news-presenter.jpg`,
      prompt:
        "A young news presenter standing in the studio, facing the camera directly, eyes always on the camera, calm and professional, very still posture, minimal head movement, no sudden gestures, with a gentle friendly smile, confident stance, studio lighting, broadcast framing, realistic style, neutral background activity.",
      lip_sync_tts_content: "Hello and welcome. This is our latest news update, and here are the headlines.",
      lip_sync_tts_speaker: "Chloe",
    },
  },
  {
    label: "Veo 3.1 Lite first + last frame",
    body: {
      model: "google/veo-3.1-lite-generate-001",
      prompt:
        "Mona Lisa sits holding glasses in her hands, then puts them on, but changes her mind, says: 'Not today', takes them off, and hides them in a handbag on her lap. Then she smiles.",
      image_url: `${REFERENCE}mona_lisa_extended.jpg`,
      last_image_url: `${REFERENCE}mona_lisa_extended.jpg`,
      duration: 8,
    },
  },
];

// What each model does, and the capabilities a request for it may need (the specs'
// render(): which one depends on the fields sent).
export const MODEL_INFO = {
  "veed/fabric-1.0": {
    title: "Fabric 1.0 — talking head",
    about: "The person in the image speaks the audio, lips in sync. The video lasts as long as the audio (under 30 s); framing follows the image.",
    needs: ["talking-head"],
  },
  "video-01": {
    title: "Hailuo video-01",
    about: "A 6-second 720p clip from a prompt, or from a first-frame image and a prompt.",
    needs: ["text-to-video", "image-to-video"],
  },
  "google/veo-3.1-i2v-fast": {
    title: "Veo 3.1 Fast — image to video",
    about: "Animates an image for 4, 6 or 8 s at 720p or 1080p, with sound; words quoted in the prompt are spoken by the face in the image.",
    needs: ["image-to-video", "dialogue"],
  },
  "pixverse/v5/image-to-video": {
    title: "PixVerse v5 — image to video",
    about: "Animates an image for 5 or 8 s (360p–1080p), optionally in a style, or makes the face say a text with a chosen voice (lip-sync).",
    needs: ["image-to-video", "lip-sync-tts"],
  },
  "google/veo-3.1-lite-generate-001": {
    title: "Veo 3.1 Lite",
    about: "Text to video, image to video, or a move from a first to a last frame (4–8 s, 720p/1080p), with sound.",
    needs: ["text-to-video", "image-to-video", "first-last-frame", "dialogue"],
  },
  "veed/fabric-1.0-fast": {
    title: "Fabric 1.0 Fast — talking head",
    about: "Fabric 1.0's sibling: the person in the image speaks the audio (under 30 s), 480p unless asked for 720p.",
    needs: ["talking-head"],
  },
  "google/veo-3.1-first-last-image-to-video-fast": {
    title: "Veo 3.1 Fast — first to last frame",
    about: "A move from a first to a last image (both required), 4, 6 or 8 s at 720p or 1080p, with sound.",
    needs: ["first-last-frame", "dialogue"],
  },
  "google/veo-3-1-lite-generate-preview": {
    title: "Veo 3.1 Lite (preview id)",
    about: "Veo 3.1 Lite under its preview id: text, image, or first + last frame (then 8 s only), 720p/1080p (default 1080p), with sound.",
    needs: ["text-to-video", "image-to-video", "first-last-frame", "dialogue"],
  },
  "pixverse/lip-sync": {
    title: "PixVerse lip-sync — dub a video",
    about: "The face in a video (MP4, MOV or WebM, up to 30 s) says new words: an audio file, or a text in a chosen voice. The video keeps its length; its sound is replaced.",
    needs: ["video-dubbing"],
  },
};
