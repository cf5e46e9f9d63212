// Verbatim copy of a JavaScript example in the seed document for google/veo-3.1-lite-generate-001, first + last frame
// (shared/seeds/004_c237e595d4ab518b.txt; it uses Node's https module). Everything after the first blank line is
// the seed's text unchanged; tests change only the base URL, the key and the media URLs.

const https = require("https");
const { URL } = require("url");
// Replace <YOUR_AIMLAPI_KEY> with your actual AI/ML API key
const apiKey = "<YOUR_AIMLAPI_KEY>";
const baseUrl = "https://api.aimlapi.com/v2";
// Creating and sending a video generation task to the server
function generateVideo(callback) {
const data = JSON.stringify({
model: "google/veo-3.1-lite-generate-001",
prompt: "Mona Lisa sits holding glasses in her hands, then puts them on, but changes her mind, says: 'Not today', takes them off, and hides them in a handbag on her lap. Then she smiles.",
image_url: "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/mona_lisa_extended.jpg",
tail_image_url: "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/mona_lisa_extended.jpg",
duration: "8",
});
const url = new URL(`${baseUrl}/video/generations`);
const options = {
method: "POST",
headers: {
"Authorization": `Bearer ${apiKey}`,
"Content-Type": "application/json",
"Content-Length": Buffer.byteLength(data),
},
};
const req = https.request(url, options, (res) => {
let body = "";
res.on("data", (chunk) => body += chunk);
res.on("end", () => {
if (res.statusCode >= 400) {
console.error(`Error: ${res.statusCode} - ${body}`);
callback(null);
} else {
const parsed = JSON.parse(body);
callback(parsed);
}
});
});
req.on("error", (err) => console.error("Request error:", err));
req.write(data);
req.end();
}
// Requesting the result of the task from the server using the generation_id
function getVideo(genId, callback) {
const url = new URL(`${baseUrl}/video/generations`);
url.searchParams.append("generation_id", genId);
const options = {
method: "GET",
headers: {
"Authorization": `Bearer ${apiKey}`,
"Content-Type": "application/json",
},
};
const req = https.request(url, options, (res) => {
let body = "";
res.on("data", (chunk) => body += chunk);
res.on("end", () => {
const parsed = JSON.parse(body);
callback(parsed);
});
});
req.on("error", (err) => console.error("Request error:", err));
req.end();
}
// Initiates video generation and checks the status every 15 seconds until completion or timeout
function main() {
generateVideo((genResponse) => {
if (!genResponse || !genResponse.id) {
console.error("No generation ID received.");
return;
}
const genId = genResponse.id;
console.log("Generation ID:", genId);
const timeout = 1000 * 1000; // 1000 sec
const interval = 15 * 1000; // 15 sec
const startTime = Date.now();
const checkStatus = () => {
if (Date.now() - startTime >= timeout) {
console.log("Timeout reached. Stopping.");
return;
}
getVideo(genId, (responseData) => {
if (!responseData) {
console.error("Error: No response from API");
return;
}
const status = responseData.status;
if (["queued", "generating"].includes(status)) {
console.log(`Status: ${status}. Checking again in 15 seconds.`);
setTimeout(checkStatus, interval);
} else {
console.log("Processing complete:\n", responseData);
}
});
};
checkStatus();
})
}
main();
