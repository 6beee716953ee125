using Cvrl.Models;
using TorchSharp;
TorchNative.EnsureLoaded();
Console.WriteLine(TorchNative.FixupStatus);
using var t = torch.ones(3);
Console.WriteLine(t.sum().item<float>());
